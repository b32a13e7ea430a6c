"""Everything mode: a point grid through the decoder, filtered and de-duplicated."""

from __future__ import annotations

import numpy as np

from medsam import automatic, load_model
from medsam.models import AutoFilters
from medsam.predictor import Predictor

from conftest import build_tiny_sam, phantom, tiny_spec


def test_everything_keeps_sorted_distinct_masks(tmp_path) -> None:
    # A random tiny SAM gives arbitrary but real masks: enough to check the filters, NMS and order.
    image, _ = phantom()
    predictor = Predictor(tiny_spec(tmp_path), build_tiny_sam())
    emb = predictor.set_image(image)
    seen: list[float] = []
    masks = automatic.generate(predictor, emb, points_per_side=6, filters=AutoFilters(None, 0.0, "test"),
                               progress=seen.append).masks
    assert masks and seen[-1] == 1.0 and seen == sorted(seen)
    assert all(m.mask.shape == image.shape and m.area == m.mask.sum() > 0 for m in masks)
    assert [m.score for m in masks] == sorted((m.score for m in masks), reverse=True)
    boxes = [tuple(np.argwhere(m.mask).min(0)) + tuple(np.argwhere(m.mask).max(0)) for m in masks]
    assert len(set(boxes)) == len(boxes), "NMS removes duplicates"
    labels = automatic.label_map(masks, image.shape)
    assert labels.shape == image.shape and labels.max() <= len(masks) and set(np.unique(labels)) - {0}


def test_box_only_model_gives_nothing_from_clicks() -> None:
    # LiteMedSAM was trained with boxes: single clicks give unstable, near-empty masks.
    image, _ = phantom()
    predictor = load_model("litemedsam")
    emb = predictor.set_image(image)
    assert automatic.generate(predictor, emb, points_per_side=4) == []
