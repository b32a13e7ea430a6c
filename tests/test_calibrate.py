"""IoU-head calibration: better ranking on held-out images, and masks untouched."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from conftest import phantom
from medsam import load_model
from medsam.checkpoints import Checkpoint, resolve
from medsam.finetune.calibrate import HEAD, KINDS, collect, report, save_head, scores, train_head
from medsam.models import REGISTRY


@pytest.fixture(scope="module")
def ellipses(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """Eight noisy images with one or two bright ellipses each: six for training, two held out."""
    folder = tmp_path_factory.mktemp("ellipses")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:120, :160]
    rows = []
    for i in range(8):
        mask = np.zeros(yy.shape, bool)
        for _ in range(1 + i % 2):
            cy, cx, ry, rx = rng.uniform([30, 40, 10, 12], [90, 120, 28, 36])
            mask |= (yy - cy) ** 2 / ry**2 + (xx - cx) ** 2 / rx**2 < 1
        image = np.where(mask, rng.uniform(140, 230), rng.uniform(20, 70)) + rng.normal(0, 10, mask.shape)
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"im{i}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"m{i}.png")
        rows.append({"image": f"im{i}.png", "mask": f"m{i}.png", "split": "train" if i < 6 else "test",
                     "group": f"case{i}"})
    return folder, pd.DataFrame(rows)


def test_calibration_brings_predicted_iou_to_the_true_iou_on_held_out_images(ellipses) -> None:
    # LiteMedSAM's own IoU head says ~0.2 for anything: on these ellipses it ranks candidates well
    # (rho ~0.8) but its values are far from the true IoU. Retrained, it must keep the ranking and
    # land near the true values on unseen images.
    folder, rows = ellipses
    predictor = load_model("litemedsam")
    train = collect(predictor, folder, rows[rows.split == "train"])
    test = collect(predictor, folder, rows[rows.split == "test"])
    assert set(test.kind) == set(KINDS) and test.true.shape == (len(test.tokens), 4)
    head = train_head(predictor.model.mask_decoder.iou_prediction_head, train, steps=300)
    before, after = report(test.predicted, test), report(scores(head, test), test)
    assert after["mae"] < before["mae"] / 3, (before, after)
    assert after["spearman_rho"] > 0.6, (before, after)


@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_a_new_iou_head_changes_scores_not_masks(backend: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = load_model("litemedsam_ft", backend=backend)
    head = copy.deepcopy(shipped.model.mask_decoder.iou_prediction_head)
    with torch.no_grad():
        head.layers[-1].bias += 0.25
    old = torch.load(resolve(shipped.spec.checkpoint), weights_only=True)
    save_head(old, head, tmp_path / "ft_head.pt")
    new = torch.load(tmp_path / "ft_head.pt", weights_only=True)
    assert [k for k in new if not torch.equal(new[k], old[k])] == [HEAD + "layers.2.bias"]
    monkeypatch.setenv("MEDSAM_CHECKPOINTS", str(tmp_path))
    spec = replace(shipped.spec, name="ft_head_test", checkpoint=Checkpoint("ft_head.pt", None, None, None))
    monkeypatch.setitem(REGISTRY, "ft_head_test", spec)
    changed = load_model("ft_head_test", backend=backend)
    image = phantom()[0]
    for prompt in ({"points": [[200, 150]], "labels": [1]}, {"box": [120, 80, 300, 330]}):
        a = shipped.predict(embedding=shipped.set_image(image), **prompt)
        b = changed.predict(embedding=changed.set_image(image), **prompt)
        assert np.array_equal(a.logits, b.logits) and np.array_equal(a.masks, b.masks)
        np.testing.assert_allclose(b.scores, a.scores + 0.25, atol=2e-3)
