"""The 3D label-efficiency study (``python -m medsam.finetune heads3d``) on tiny generated volumes, and
its slicing on the real hippocampus volumes when present.

The heads read a stand-in for LiteMedSAM's features here (the preprocessed picture, pooled to the
64 x 64 grid and repeated over the 256 channels): what is under test is the protocol (slices,
draws, 3D scores, resuming); ``test_heads`` trains on the real encoder's features.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from medsam.finetune import heads, heads3d, study
from medsam.heads import KINDS, PREPROCESSING, head_logits
from medsam.metrics import volume_scores
from medsam.predictor import load_model
from medsam.scan import Scan

SHAPE = (24, 24, 12)  # (x, y, z) voxels: 12 axial slices per volume
AFFINE = np.diag([-1.0, 1.0, 2.0, 1.0])  # stored right-to-left, 2 mm slices: load_scan flips x to RAS+
SPLITS = ["train", "train", "test", "test"]
CLASSES = {"box_bright": (1,), "box_dark": (2,)}
VOLUMES = Path(os.environ.get("MEDSAM_VOLUMES", Path(__file__).resolve().parents[1].parent / "shared" / "volumes"))


def make_volumes(folder: Path) -> Path:
    """A volumes folder: dataset "boxes", a bright box (label 1) beside a dark one (label 2) in each
    volume, neither on the first and last slices; "both" (1,2) is their union, which the study leaves out."""
    rng = np.random.default_rng(0)
    (folder / "boxes").mkdir(parents=True)
    rows = []
    for n, split in enumerate(SPLITS):
        x, y = rng.integers(3, 7), rng.integers(3, 9)
        labels = np.zeros(SHAPE, np.uint8)
        labels[x:x + 7, y:y + 10, 2:10] = 1
        labels[x + 9:x + 15, y:y + 10, 3:9] = 2
        image = np.choose(labels, [100.0, 220.0, 20.0]) + rng.normal(0, 8, SHAPE)
        for name, data in ((f"v{n}", image.astype(np.float32)), (f"v{n}_label", labels)):
            nib.Nifti1Image(data, AFFINE).to_filename(folder / "boxes" / f"{name}.nii.gz")
        for obj, value in (("box_bright", "1"), ("box_dark", "2"), ("both", "1,2")):
            rows.append({"dataset_id": "boxes", "modality": "mri", "object": obj, "image": f"boxes/v{n}.nii.gz",
                         "label": f"boxes/v{n}_label.nii.gz", "label_value": value, "split": split})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder


def pooled_pixels(predictor: object, rgb: np.ndarray) -> SimpleNamespace:
    """The stand-in for ``features_for``: (1, 256, 64, 64) features from the picture itself."""
    pixels, _ = PREPROCESSING.image(rgb)
    return SimpleNamespace(features=F.avg_pool2d(pixels, 4).repeat(1, 86, 1, 1)[:, :256])


@pytest.fixture(scope="module", autouse=True)
def stand_in_features() -> Iterator[None]:
    """Pooled pixels for features, and one torch thread (small tensors gain little from two, and a
    busy machine loses a lot)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(heads, "features_for", pooled_pixels)
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_volumes(tmp_path_factory.mktemp("volumes"))


def _volume(data: Path, image: str) -> tuple[Scan, np.ndarray, list[heads.Item]]:
    scan, masks = heads3d.load_volume(data, image, image.replace(".nii", "_label.nii"), CLASSES)
    return scan, masks, heads3d.volume_items(scan, masks, load_model("litemedsam"), image)


def test_classes_leave_out_a_union_of_other_classes() -> None:
    rows = pd.DataFrame({"object": ["whole", "b", "a", "core", "tumour"],
                         "label_value": ["1,2", "2", "1", "1,3,4", "1,2,3,4"]})
    assert heads3d.volume_classes(rows) == {"a": (1,), "b": (2,), "core": (1, 3, 4)}
    # neither of two overlapping classes is the union of the other: both stay
    rows = pd.DataFrame({"object": ["whole_tumor", "tumor_core"], "label_value": ["1,2,3,4", "1,3,4"]})
    assert list(heads3d.volume_classes(rows)) == ["tumor_core", "whole_tumor"]


def test_slices_stack_back_into_the_volume(data: Path) -> None:
    assert heads3d.volume_classes(pd.read_csv(data / "manifest.csv", dtype=str)) == CLASSES
    scan, masks = heads3d.load_volume(data, "boxes/v0.nii.gz", "boxes/v0_label.nii.gz", CLASSES)
    assert masks.shape == (2, *SHAPE) and scan.spacing == (1.0, 1.0, 2.0)
    stored = np.asarray(nib.load(data / "boxes/v0_label.nii.gz").dataobj)
    assert np.array_equal(masks[0], stored[::-1] == 1)  # RAS+: x flipped
    planes = [np.stack([scan.view(m, heads3d.AXIS, i) for m in masks]) for i in range(SHAPE[2])]
    assert planes[3].shape == (2, 24, 24) and not np.array_equal(planes[3][0], masks[0][:, :, 3])  # turned
    assert np.array_equal(heads3d.stack_slices(scan, planes), masks)


def test_cli_writes_3d_scores_and_resumes(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    argv = ["--data", str(data), "--datasets", "boxes", "--k", "1,all", "--draws", "2", "--steps", "3",
            "--epochs", "0", "--out", str(out)]
    heads3d.main(argv)
    csv = out / "label_efficiency3d.csv"
    df = pd.read_csv(csv, dtype={"k_label": str})
    assert list(df.columns) == heads3d.COLUMNS and len(df) == 2 * 2 * 4 * 2  # k x draws x heads x classes
    assert set(df["head"]) == set(KINDS) and set(df["class"]) == {"box_bright", "box_dark"}
    assert set(df.loc[df["k_label"] == "all", "k"]) == {2} and (df["n_test"] == 2).all() and (df["steps"] == 3).all()
    assert set(zip(df["k"], df["train_slices"])) == {(1, 12), (2, 24)}  # every slice, the empty ones too
    assert df["dice_mean"].between(0, 1).all() and df["nsd_mean"].between(0, 1).all()
    assert not df.duplicated(study.KEY).any()

    # the 3D scores of one row, recomputed: the linear head (seed = draw) on draw 0's volume, each test
    # slice predicted alone and put back by the display convention (view = fliplr(rot90(plane)))
    (train,) = study.subset(["boxes/v0.nii.gz", "boxes/v1.nii.gz"], 1, "boxes", 0)
    model = heads.train_head("linear", _volume(data, train)[2], 3, seed=0)
    dices = []
    for image in ("boxes/v2.nii.gz", "boxes/v3.nii.gz"):
        _, masks, items = _volume(data, image)
        pred = np.zeros_like(masks)
        for i, item in enumerate(items):
            for c, mask in enumerate((head_logits(model, item.features[None], item.geometry)[0] > 0).numpy()):
                pred[c, :, :, i] = np.rot90(np.fliplr(mask), -1)
        dices.append([volume_scores(p, g, (1, 1, 2))["dice3d"] for p, g in zip(pred, masks)])
    row = df.query("head == 'linear' and k_label == '1' and draw == 0").set_index("class")
    assert row.loc[["box_bright", "box_dark"], "dice_mean"].tolist() == pytest.approx(np.mean(dices, 0))

    heads3d.main(argv)  # all done: nothing trained, nothing written
    assert "Wrote 0 rows" in capsys.readouterr().out
    df.drop(index=[0, 1]).to_csv(csv, index=False)  # lose one training's rows: only they are redone
    heads3d.main(argv)
    again = pd.read_csv(csv, dtype={"k_label": str})
    assert len(again) == len(df) and not again.duplicated(study.KEY).any()
    runs = json.loads((out / "label_efficiency3d_provenance.json").read_text())["runs"]
    assert [r["rows_written"] for r in runs] == [32, 0, 2] and runs[0]["completed"]
    assert runs[0]["options"]["slices"] == "all" and {"command", "git_commit", "versions", "wall_s"} <= set(runs[0])
    assert runs[0]["options"]["epochs"] == 0 and runs[0]["options"]["decoder_start"] == "prior"
    assert runs[0]["options"]["warmup"] == heads3d.WARMUP


def test_epochs_give_more_steps_to_more_slices(data: Path, tmp_path: Path) -> None:
    argv = ["--data", str(data), "--datasets", "boxes", "--k", "1,2", "--draws", "1", "--heads", "linear",
            "--steps", "15", "--epochs", "2", "--out", str(tmp_path)]
    assert heads3d.parse_args(argv[:-4] + argv[-2:]).epochs == heads3d.EPOCHS  # the default
    assert heads.parse_args(argv[:-4] + argv[-2:]).epochs == 0  # the 2D study's
    heads3d.main(argv)
    df = pd.read_csv(tmp_path / "label_efficiency3d.csv")
    # k=1: 12 slices, 2 passes are 24 steps, more than --steps; k=2: 48
    assert sorted(set(zip(df["train_slices"], df["steps"]))) == [(12, 24), (24, 48)]


@pytest.mark.parametrize("args, message", [
    ([], "Give --out"),
    (["--out", "r", "--datasets", "nope"], "no dataset 'nope'"),
    (["--out", "r", "--k", "1,x"], "--k must be"),
])
def test_bad_cli_input_exits_with_one_sentence(args: list[str], message: str, data: Path,
                                               monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=message):
        heads3d.main(["--data", str(data), *args])


def test_real_hippocampus_volumes_slice_and_stack() -> None:
    if not (VOLUMES / "manifest.csv").is_file():
        pytest.skip(f"no volumes folder at {VOLUMES} (set MEDSAM_VOLUMES)")
    rows = pd.read_csv(VOLUMES / "manifest.csv", dtype=str).query("dataset_id == 'msd_hippocampus'")
    classes = heads3d.volume_classes(rows)
    assert classes == {"hippocampus_anterior": (1,), "hippocampus_posterior": (2,)}
    assert rows.drop_duplicates("image")["split"].value_counts().to_dict() == {"train": 20, "test": 20}
    first = rows[rows["split"] == "train"].iloc[0]
    scan, masks = heads3d.load_volume(VOLUMES, first["image"], first["label"], classes)
    assert scan.spacing == pytest.approx((1, 1, 1))
    assert masks[0].any() and masks[1].any() and not (masks[0] & masks[1]).any()
    planes = [np.stack([scan.view(m, heads3d.AXIS, i) for m in masks]) for i in range(scan.n_slices(heads3d.AXIS))]
    assert planes[0].shape[1:] == scan.render(scan.default_window, heads3d.AXIS, 0).shape[:2]
    assert np.array_equal(heads3d.stack_slices(scan, planes), masks)
