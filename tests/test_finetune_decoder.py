"""Decoder finetuning: targets on the decoder's grid, a falling loss, and loading through the registry."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from medsam import CheckpointError, load_model
from medsam.checkpoints import Checkpoint
from medsam.finetune.decoder import finetune, load_targets, low_res_target, save_decoder, train_step
from medsam.models import REGISTRY, build_model


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """Three images with bright ellipses (one with two components) in manifest layout."""
    folder = tmp_path_factory.mktemp("blobs")
    yy, xx = np.mgrid[:96, :128]
    rows = []
    for i, centres in enumerate([[(40, 60)], [(30, 40), (60, 95)], [(50, 70)]]):
        mask = np.zeros((96, 128), bool)
        for cy, cx in centres:
            mask |= (yy - cy) ** 2 / 15**2 + (xx - cx) ** 2 / 22**2 < 1
        Image.fromarray(np.where(mask, 210, 35).astype(np.uint8)).save(folder / f"im{i}.png")
        Image.fromarray((mask * 255).astype(np.uint8)).save(folder / f"m{i}.png")
        rows.append({"image": f"im{i}.png", "mask": f"m{i}.png"})
    return folder, pd.DataFrame(rows)


def test_targets_cover_components_and_whole_mask(blobs) -> None:
    folder, rows = blobs
    targets = load_targets(load_model("litemedsam"), folder, rows)
    assert [len(t) for t in targets] == [1, 3, 1]  # two components + the whole mask
    t = targets[0][0]
    assert t.low_res.shape == (1, 1, 256, 256)
    # 96x128 -> 192x256 inside the padded 256 grid: nothing below row 192
    assert t.low_res[..., 192:, :].sum() == 0 and abs(float(t.low_res.sum()) / t.mask.sum() - 4.0) < 0.2


def test_low_res_target_follows_geometry() -> None:
    emb = load_model("litemedsam").set_image(np.zeros((100, 50, 3), np.uint8))
    mask = np.zeros((100, 50), bool)
    mask[:, 25:] = True
    t = low_res_target(mask, emb)
    assert t[0, 0, :, 128:].sum() == 0 and t[0, 0, :256, 64:128].all()


def test_finetuning_lowers_the_loss_on_fixed_prompts(blobs) -> None:
    folder, rows = blobs
    targets = load_targets(load_model("litemedsam"), folder, rows)
    flat = [t for ts in targets for t in ts]
    model = build_model(REGISTRY["litemedsam"])

    def fixed_loss() -> float:
        with torch.no_grad():
            return float(np.mean([train_step(model, flat, np.random.default_rng(s)).item() for s in range(3)]))

    before = fixed_loss()
    history = finetune(model, targets, steps=12, batch_size=3, lr=1e-3)
    assert len(history) == 12 and not any(p.requires_grad for p in model.parameters())
    assert fixed_loss() < before


def test_finetuned_decoder_loads_on_its_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSAM_CHECKPOINTS", str(tmp_path))
    model = build_model(REGISTRY["litemedsam"])
    with torch.no_grad():
        model.mask_decoder.iou_prediction_head.layers[0].bias.fill_(0.25)
    path = save_decoder(model, tmp_path / "ft.pt")
    state = torch.load(path, weights_only=True)
    assert state and all(k.startswith(("prompt_encoder.", "mask_decoder.")) for k in state)
    assert all(v.dtype == torch.float16 for v in state.values()) and path.stat().st_size < 10e6
    spec = replace(REGISTRY["litemedsam_ft"], name="ft_test", checkpoint=Checkpoint("ft.pt", None, None, None))
    monkeypatch.setitem(REGISTRY, "ft_test", spec)
    loaded = build_model(spec)
    assert torch.allclose(loaded.mask_decoder.iou_prediction_head.layers[0].bias, torch.full((256,), 0.25))
    base = build_model(REGISTRY["litemedsam"])
    assert torch.equal(loaded.image_encoder.neck[0].weight, base.image_encoder.neck[0].weight)
    ft = load_model("ft_test")
    assert ft.encoder_name == "litemedsam"
    assert torch.allclose(ft.model.mask_decoder.iou_prediction_head.layers[0].bias, torch.full((256,), 0.25))

    torch.save({"image_encoder.extra": torch.zeros(3)}, tmp_path / "bad.pt")
    bad = replace(spec, name="ft_bad", checkpoint=Checkpoint("bad.pt", None, None, None))
    monkeypatch.setitem(REGISTRY, "ft_bad", bad)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_model("ft_bad")


def test_paired_summary_counts_and_tests() -> None:
    from medsam.finetune.evaluate import paired_summary

    rng = np.random.default_rng(0)
    rows = []
    for i in range(20):
        base = rng.uniform(0.2, 0.6)
        for model, dice in (("a", base), ("b", base + 0.2 if i < 18 else base - 0.1)):
            rows.append({"model": model, "strategy": "point_center", "dataset": "d", "modality": "ct",
                         "object": "o", "image": f"i{i}", "mask": f"m{i}", "seed": 0, "dice": dice})
    rows.append({**rows[-1], "model": "a", "mask": "only_a"})  # unpaired rows are left out
    out = paired_summary(pd.DataFrame(rows), "a", "b").iloc[0]
    assert out["n"] == 20 and out["better"] == 18 and out["worse"] == 2
    assert abs(out["mean_diff"] - (18 * 0.2 - 2 * 0.1) / 20) < 1e-9 and out["p_value"] < 0.01


def test_shipped_finetuned_decoder_makes_clicks_work() -> None:
    """The committed litemedsam_ft loads through the registry (size and sha256 checked) and, unlike
    box-only LiteMedSAM, turns one click on the phantom's ellipse into a real mask."""
    from conftest import phantom
    from medsam.metrics import dice

    image, target = phantom()
    ys, xs = np.nonzero(target)
    click = [[float(xs.mean()), float(ys.mean())]]
    scores = {}
    for name in ("litemedsam", "litemedsam_ft"):
        p = load_model(name)
        p.set_image(image)
        scores[name] = dice(p.predict(points=click, labels=[1]).masks[0], target)
    assert scores["litemedsam"] < 0.3 and scores["litemedsam_ft"] > 0.7, scores
