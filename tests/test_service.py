"""The app's compute layer without a browser: sessions, prompts, ground truth, export, the API call."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medsam import InputError
from medsam.model_notes import model_choices
from medsam.service import segment_files
from medsam.session import MODES, Session

POS, NEG, BOX = MODES


def test_box_session_with_ground_truth(phantom_files) -> None:
    image, mask, (x0, y0, x1, y1) = phantom_files
    s = Session()
    s.load(image)
    s.click(x0, y0, BOX)
    assert s.corner is not None and s.prompt() is None
    s.click(x1, y1, BOX)
    assert s.box == (x0, y0, x1, y1)
    s.set_gt(mask)
    s.predict(["litemedsam"])
    run = s.runs[0]
    assert run.error is None and run.scores["dice"] > 0.9
    s.predict(["litemedsam"])
    assert s.runs[0].cached, "a prompt change must reuse the embedding"
    row = s.runs[0].summary()
    assert row["embedding_cached"] and row["dice"] > 0.9 and len(row["candidate_scores"]) == 3


def test_undo_and_clear(phantom_files) -> None:
    image, _, (x0, y0, x1, y1) = phantom_files
    s = Session()
    s.load(image)
    s.click(x0, y0, BOX)
    s.click(x1, y1, BOX)
    s.click(5, 5, NEG)
    s.click((x0 + x1) / 2, (y0 + y1) / 2, POS)
    assert s.labels == [0, 1]
    s.undo()
    assert s.labels == [0]
    s.undo()
    s.undo()
    assert s.points == [] and s.box is None
    s.click(x0, y0, BOX)
    s.clear()
    assert s.corner is None and s.prompt() is None


def test_choose_candidate_updates_dice(phantom_files) -> None:
    image, mask, box = phantom_files
    s = Session()
    s.load(image)
    s.set_gt(mask)
    s.click(box[0], box[1], BOX)
    s.click(box[2], box[3], BOX)
    s.predict(["litemedsam"])
    dices = []
    for k in range(3):
        s.choose(k)
        dices.append(s.runs[0].scores["dice"])
        assert s.runs[0].chosen == k
    assert len(set(dices)) > 1


def test_compare_two_models_reports_missing_weights(phantom_files, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSAM_CHECKPOINTS", str(tmp_path))
    image, _, box = phantom_files
    s = Session()
    s.load(image)
    s.click(box[0], box[1], BOX)
    s.click(box[2], box[3], BOX)
    s.predict(["litemedsam", "sam_vit_b"])
    assert s.runs[0].error is None
    error = s.runs[1].error
    assert "sam_vit_b_01ec64.pth" in error and "$MEDSAM_CHECKPOINTS" in error and str(tmp_path) not in error
    monkeypatch.setenv("MEDSAM_DOWNLOAD", "0")
    labels = dict((name, label) for label, name in model_choices())
    assert "needs sam_vit_b_01ec64.pth" in labels["sam_vit_b"] and "ready" in labels["litemedsam"]


def test_volume_slices_and_nifti_export(tmp_path: Path) -> None:
    vol = np.zeros((40, 48, 12), np.float32)
    vol[10:30, 12:36, 3:9] = 1000.0
    affine = np.diag([-0.8, 0.8, 2.5, 1.0])
    nib.save(nib.Nifti1Image(vol, affine), tmp_path / "vol.nii.gz")
    s = Session()
    s.load(tmp_path / "vol.nii.gz")
    assert s.scan.is_volume and s.index == 6
    s.click(2, 2, POS)
    s.set_view(axis=2, index=5)
    assert s.prompt() is None, "a new slice clears the prompts"
    h, w = s.rgb.shape[:2]
    s.click(1, 1, BOX)
    s.click(w - 2, h - 2, BOX)
    s.predict(["litemedsam"])
    png, nii = s.export()
    out = nib.load(nii)
    assert out.shape == vol.shape and np.allclose(out.affine, affine)
    data = np.asarray(out.dataobj)
    assert data[..., 5].any() and not np.delete(data, 5, axis=2).any()


def test_bad_session_actions(phantom_files) -> None:
    s = Session()
    with pytest.raises(InputError, match="Load an image"):
        s.click(1, 1, POS)
    image, _, _ = phantom_files
    s.load(image)
    with pytest.raises(InputError, match="no mask to export"):
        s.export()
    with pytest.raises(InputError, match=r"\(9999, 5\) is outside the 400x400 image"):
        s.click(9999, 5, POS)
    assert s.points == [] and s.history == []


def test_segment_files_api(phantom_files) -> None:
    image, mask, box = phantom_files
    png, info = segment_files(image, json.dumps({"box": box}), "litemedsam", mask)
    assert Path(png).is_file() and info["dice"] > 0.9 and info["image_size"] == [400, 400]
    _, info = segment_files(image, {"points": [[200, 200]], "labels": [1]}, "litemedsam")
    assert "box prompts only" in info["warning"]


@pytest.mark.parametrize("prompts, message", [
    ("not json", "must be JSON"),
    ('{"boxes": [1, 2, 3, 4]}', "Unknown prompt keys: boxes"),
    ('[1, 2]', "must be JSON"),
    ('{}', "at least one point or a box"),
])
def test_segment_files_bad_prompts(phantom_files, prompts: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        segment_files(phantom_files[0], prompts, "litemedsam")


def test_segment_files_wrong_size_ground_truth(phantom_files, tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((10, 12), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(InputError, match="12x10 pixels but the image is 400x400"):
        segment_files(phantom_files[0], {"box": phantom_files[2]}, "litemedsam", tmp_path / "small.png")


def test_status_reports_ground_truth(phantom_files) -> None:
    from medsam.ui.segment_view import status_text as _status

    image, mask, _ = phantom_files
    s = Session()
    s.load(image)
    assert "Ground truth" not in _status(s, ["litemedsam"])
    s.set_gt(mask)
    expected = int(np.asarray(Image.open(mask)).astype(bool).sum())
    assert f"Ground truth loaded: {expected} mask pixels" in _status(s, ["litemedsam"])
