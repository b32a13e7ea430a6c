"""Everything mode: a point grid through the decoder, filtered and de-duplicated, and what it says."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import build_tiny_sam, phantom, tiny_spec
from medsam import automatic, load_model
from medsam.imaging import load_rgb
from medsam.models import REGISTRY, AutoFilters
from medsam.paths import REPO
from medsam.predictor import Predictor, Prompt
from medsam.service import everything

KEEP_ALL = AutoFilters(None, 0.0, "test")
GALLERY = sorted((REPO / "assets" / "examples" / "images").glob("*.png"))


def test_everything_keeps_sorted_distinct_masks(tmp_path) -> None:
    # A random tiny SAM gives arbitrary but real masks: enough to check the filters, NMS and order.
    image, _ = phantom()
    predictor = Predictor(tiny_spec(tmp_path), build_tiny_sam())
    emb = predictor.set_image(image)
    seen: list[float] = []
    result = automatic.generate(predictor, emb, points_per_side=6, filters=KEEP_ALL, progress=seen.append)
    masks = result.masks
    assert masks and seen[-1] == 1.0 and seen == sorted(seen)
    assert result.tally.candidates == 3 * 36 and len(masks) <= result.tally.passed == result.tally.nonempty
    assert all(m.mask.shape == image.shape and m.area == m.mask.sum() > 0 for m in masks)
    assert [m.score for m in masks] == sorted((m.score for m in masks), reverse=True)
    boxes = [tuple(np.argwhere(m.mask).min(0)) + tuple(np.argwhere(m.mask).max(0)) for m in masks]
    assert len(set(boxes)) == len(boxes), "NMS removes duplicates"
    labels = automatic.label_map(masks, image.shape)
    assert labels.shape == image.shape and labels.max() <= len(masks) and set(np.unique(labels)) - {0}


@pytest.mark.parametrize("backend", ["torch", "openvino", "onnxruntime"])
def test_decode_clicks_gives_what_decode_gives(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSAM_CHECKPOINTS", str(tmp_path))
    # the same arithmetic in f32; in bf16 the two graphs round differently
    predictor = Predictor(tiny_spec(tmp_path), build_tiny_sam(), backend=backend, precision="f32")
    emb = predictor.set_image(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8))
    clicks = automatic.grid_points(5, 300, 400)  # 25 clicks: one full batch of 16 and a padded one
    fast, fast_iou = predictor.decode_clicks(clicks, emb)
    slow, slow_iou = predictor.decode([Prompt(c[None], np.ones(1)).checked(300, 400) for c in clicks], emb)
    assert fast.shape == slow.shape == (25, 3, 256, 256) and fast_iou.shape == (25, 3)
    np.testing.assert_allclose(fast.numpy(), slow.numpy(), atol=1e-3, rtol=1e-3)
    np.testing.assert_allclose(fast_iou.numpy(), slow_iou.numpy(), atol=1e-4)


def test_filters_come_from_the_spec(tmp_path: Path) -> None:
    image, _ = phantom()
    spec = tiny_spec(tmp_path)
    found = {}
    for name, filters in (("loose", KEEP_ALL), ("strict", AutoFilters(None, 1.01, "test"))):
        predictor = Predictor(replace(spec, everything=filters), build_tiny_sam(), backend="torch")
        result = automatic.generate(predictor, predictor.set_image(image), points_per_side=4)
        assert result.filters is filters
        found[name] = result
    assert found["loose"].masks and found["loose"].tally.passed == found["loose"].tally.nonempty > 0
    assert not found["strict"].masks and found["strict"].tally.stable == found["strict"].tally.passed == 0


def test_shipped_filters_are_the_ones_chosen_on_the_training_split() -> None:
    chosen = json.loads((REPO / "results" / "everything_filters.json").read_text())
    for name in ("litemedsam", "litemedsam_ft"):
        f = REGISTRY[name].everything
        assert (f.pred_iou, f.stability) == (chosen[name]["pred_iou"], chosen[name]["stability"]), name
        assert "python -m medsam.finetune filters" in f.chosen_by


def _result(masks: int, **tally: int) -> automatic.Everything:
    counts = {"grid": 16, "candidates": 768, "nonempty": 700, "confident": 300, "stable": 200, "passed": 0} | tally
    found = [automatic.AutoMask(np.ones((4, 4), bool), 0.8, 0.9, 16)] * masks
    return automatic.Everything(found, automatic.Tally(**counts), AutoFilters(0.6, 0.8, "test"), 7.3)


def test_the_sentence_is_true_for_the_model() -> None:
    ft, lite = REGISTRY["litemedsam_ft"], REGISTRY["litemedsam"]
    assert automatic.describe(_result(12, passed=40), ft) == (
        "Everything mode (litemedsam_ft): 12 masks from a 16x16 point grid (768 candidate masks), kept for "
        "predicted IoU >= 0.6 and stability >= 0.8, overlaps removed; 7.3 s of decoding.")
    note = automatic.describe(_result(0, stable=0), ft)
    assert "none of the 700 non-empty ones had stability >= 0.8" in note and "box" not in note
    note = automatic.describe(_result(0, confident=0), lite)
    assert "none of the 700 non-empty ones had predicted IoU >= 0.6" in note
    assert "litemedsam was trained with box prompts only" in note
    assert "box prompts only" in automatic.describe(_result(3, passed=3), lite)
    loose = replace(_result(3, passed=3), filters=AutoFilters(None, 0.0, "test"))
    assert "(768 candidate masks), every non-empty one kept, overlaps removed" in automatic.describe(loose, ft)
    assert "300 had predicted IoU >= 0.6 and 200 had stability >= 0.8, but none had both" in \
        automatic.describe(_result(0), ft)
    assert "all of them were empty" in automatic.describe(_result(0, nonempty=0), ft)


@pytest.mark.parametrize("path", GALLERY, ids=lambda p: p.stem)
def test_litemedsam_ft_finds_masks_on_the_gallery(path: Path) -> None:
    rgb = load_rgb(path)
    labels, note = everything("litemedsam_ft", rgb)
    n = int(labels.max())
    assert labels.shape == rgb.shape[:2] and n >= 1
    assert note.startswith(f"Everything mode (litemedsam_ft): {n} mask") and "16x16 point grid" in note


def test_box_only_litemedsam_keeps_only_faint_masks_from_clicks() -> None:
    # LiteMedSAM was trained with boxes: its click logits barely cross 0, so no mask is stable.
    predictor = load_model("litemedsam")
    c = automatic.candidates(predictor, predictor.set_image(phantom()[0]), 4, KEEP_ALL)
    assert c.tally.nonempty > 0 and float(c.stability.max()) == 0.0 and float(c.logits.max()) < 1.0


def test_the_filter_search_takes_the_fewest_masks_near_the_best_dice() -> None:
    import pandas as pd

    from medsam.finetune.filters import TOLERANCE, choose

    table = pd.DataFrame({"pred_iou": [None, 0.5, 0.7, 0.9], "stability": [0.0, 0.5, 0.7, 0.9],
                          "dice": [0.60, 0.61, 0.61 - TOLERANCE / 2, 0.40], "masks_per_image": [90, 40, 12, 2]})
    best, chosen = choose(table)
    assert (best["pred_iou"], chosen["pred_iou"]) == (0.5, 0.7)
