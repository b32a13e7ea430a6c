"""SAM's automatic "everything" mode: prompt a regular point grid, keep good, distinct masks.

Follows ``segment_anything``'s automatic mask generator on one crop: a ``points_per_side``-squared
grid of single positive clicks at the centres of a tiling of the image, three candidate masks per
click, a predicted-IoU filter and a stability filter (IoU of the mask thresholded at logit -1 and
+1), then box NMS at IoU 0.7 with the highest predicted IoU first. The filters are the model's
(``ModelSpec.everything``, chosen on the training split by ``python -m medsam.finetune filters``).

For CPU speed the clicks go through the decoder in batches that share the image work
(``Predictor.decode_clicks``), filters and NMS run on the decoder's low-resolution logits cropped
to the image, and only the surviving masks are upscaled to the image size.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from segment_anything.utils.amg import batched_mask_to_box, build_point_grid, calculate_stability_score
from torchvision.ops import batched_nms

from .backends import GRID_BATCH
from .models import LOW_RES, AutoFilters, ModelSpec
from .predictor import Embedding, Predictor

NMS_THRESH = 0.7  # SAM's box_nms_thresh
UPSCALE_PIXELS = 2**25  # float logits upscaled at a time (128 MB), however large the image


@dataclass
class AutoMask:
    """One automatic mask with the scores it was kept for."""

    mask: np.ndarray  # (H, W) bool
    score: float  # predicted IoU
    stability: float
    area: int


@dataclass(frozen=True)
class Tally:
    """How a grid's candidate masks fared against the filters (counts before overlap removal)."""

    grid: int  # points per side
    candidates: int  # three per click
    nonempty: int
    confident: int  # non-empty with predicted IoU at or above the filter (all non-empty when unused)
    stable: int  # non-empty with stability at or above the filter
    passed: int  # non-empty, confident and stable


@dataclass
class Candidates:
    """The candidates of a grid that passed ``filters``, on the decoder's 256 x 256 grid."""

    logits: torch.Tensor  # (N, 256, 256) low-res logits, padding included
    scores: torch.Tensor  # (N,) predicted IoU
    stability: torch.Tensor  # (N,)
    boxes: torch.Tensor  # (N, 4) float box of each mask on the low-res grid, for NMS
    tally: Tally


@dataclass
class Everything:
    """Everything mode's answer: masks (best predicted IoU first), the tally and the time taken."""

    masks: list[AutoMask]
    tally: Tally
    filters: AutoFilters
    seconds: float  # decoding and post-processing, without the image encode


def grid_points(points_per_side: int, height: int, width: int) -> np.ndarray:
    """SAM's point grid in original pixels (x, y), clipped inside the image."""
    return np.minimum(build_point_grid(points_per_side) * [width, height], [width - 1, height - 1])


def candidates(predictor: Predictor, embedding: Embedding, points_per_side: int, filters: AutoFilters,
               progress: Callable[[float], None] | None = None) -> Candidates:
    """Decode the grid's clicks in batches; keep the non-empty candidates that pass ``filters``."""
    h, w = embedding.geometry.original
    points = grid_points(points_per_side, h, w)
    crop = [int(np.ceil(s * LOW_RES / embedding.geometry.input_size)) for s in embedding.geometry.resized]
    kept: list[tuple[torch.Tensor, ...]] = []
    counts = np.zeros(4, int)
    for start in range(0, len(points), GRID_BATCH):
        low_res, scores = predictor.decode_clicks(points[start:start + GRID_BATCH], embedding)
        low_res, scores = low_res.flatten(0, 1), scores.flatten()
        inside = low_res[:, :crop[0], :crop[1]]
        stability = calculate_stability_score(inside, 0.0, 1.0)
        nonempty = (inside > 0).flatten(1).any(1)
        confident = nonempty if filters.pred_iou is None else nonempty & (scores >= filters.pred_iou)
        stable = nonempty & (stability >= filters.stability)
        counts += [int(nonempty.sum()), int(confident.sum()), int(stable.sum()), int((confident & stable).sum())]
        keep = confident & stable
        kept.append((low_res[keep], scores[keep], stability[keep], batched_mask_to_box(inside[keep] > 0).float()))
        if progress:
            progress(min(1.0, (start + GRID_BATCH) / len(points)))
    logits, scores, stability, boxes = (torch.cat([k[i] for k in kept]) for i in range(4))
    return Candidates(logits, scores, stability, boxes, Tally(points_per_side, 3 * len(points), *map(int, counts)))


def select(c: Candidates, filters: AutoFilters) -> torch.Tensor:
    """Indices of the candidates that pass ``filters`` and survive box NMS, best predicted IoU first."""
    ok = c.stability >= filters.stability
    if filters.pred_iou is not None:
        ok &= c.scores >= filters.pred_iou
    idx = torch.nonzero(ok)[:, 0]
    return idx[batched_nms(c.boxes[idx], c.scores[idx], torch.zeros_like(idx), NMS_THRESH)]


def upscale(predictor: Predictor, embedding: Embedding, logits: torch.Tensor) -> np.ndarray:
    """Low-res logits (N, 256, 256) -> masks (N, H, W) bool at the image size, a chunk at a time."""
    h, w = embedding.geometry.original
    out = np.zeros((len(logits), h, w), bool)
    step = max(1, UPSCALE_PIXELS // (h * w))
    for start in range(0, len(logits), step):
        chunk = predictor.spec.preprocessing.upscale(logits[start:start + step][:, None], embedding.geometry)
        out[start:start + len(chunk)] = (chunk[:, 0] > 0).numpy()
    return out


def generate(predictor: Predictor, embedding: Embedding, points_per_side: int = 16,
             filters: AutoFilters | None = None, progress: Callable[[float], None] | None = None) -> Everything:
    """Masks for the whole image from a ``points_per_side``-squared grid of single positive clicks,
    with the model's filters unless ``filters`` is given."""
    start = time.perf_counter()
    filters = filters or predictor.spec.everything
    c = candidates(predictor, embedding, points_per_side, filters, progress)
    keep = select(c, filters)
    masks = upscale(predictor, embedding, c.logits[keep])
    found = [AutoMask(m, float(s), float(st), int(m.sum()))
             for m, s, st in zip(masks, c.scores[keep], c.stability[keep]) if m.any()]
    return Everything(found, c.tally, filters, time.perf_counter() - start)


def describe(result: Everything, spec: ModelSpec) -> str:
    """True sentences about ``result`` for the model of ``spec``: how many masks from what grid and
    filters, or, when there are none, which filter stopped the candidates."""
    t, f = result.tally, result.filters
    iou = None if f.pred_iou is None else f"predicted IoU >= {f.pred_iou:g}"
    stable = f"stability >= {f.stability:g}"
    source = f"Everything mode ({spec.name}): {{}} from a {t.grid}x{t.grid} point grid ({t.candidates} candidate masks)"
    if result.masks:
        n = len(result.masks)
        rules = [r for r in (iou, stable if f.stability > 0 else None) if r]
        kept = "kept for " + " and ".join(rules) if rules else "every non-empty one kept"
        note = source.format(f"{n} mask{'s' if n != 1 else ''}") + f", {kept}, overlaps removed; " \
            f"{result.seconds:.1f} s of decoding."
    else:
        note = source.format("no mask") + f": {_why_none(t, iou, stable)}."
    if spec.prompts == "box":
        note += (f" {spec.name} was trained with box prompts only, so masks from single clicks are unreliable; "
                 f"draw a box instead.")
    return note


def _why_none(t: Tally, iou: str | None, stable: str) -> str:
    if t.nonempty == 0:
        return "all of them were empty"
    if t.passed:
        return f"the {t.passed} that passed the filters were too small to show at the image size"
    if iou and t.confident == 0:
        return f"none of the {t.nonempty} non-empty ones had {iou}"
    if t.stable == 0:
        return (f"none of the {t.nonempty} non-empty ones had {stable} (a stable mask barely changes as its "
                f"threshold moves from logit -1 to +1)")
    return f"of the {t.nonempty} non-empty ones, {t.confident} had {iou} and {t.stable} had {stable}, but none had both"


def label_map(masks: list[AutoMask], shape: tuple[int, int]) -> np.ndarray:
    """Paint masks largest first so smaller ones stay visible on top: (H, W) int32, 0 = none."""
    labels = np.zeros(shape, np.int32)
    for i, m in sorted(enumerate(masks, 1), key=lambda im: -im[1].area):
        labels[m.mask] = i
    return labels
