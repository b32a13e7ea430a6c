"""SAM's automatic "everything" mode: prompt a regular point grid, keep good, distinct masks.

Follows ``segment_anything``'s automatic mask generator (point grid, predicted-IoU and stability
filters, box NMS) on one crop, with two changes for CPU speed: filters and NMS run on the
decoder's low-resolution logits, and only the surviving masks are upscaled to the image size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from segment_anything.utils.amg import batched_mask_to_box, build_point_grid, calculate_stability_score
from torchvision.ops import batched_nms

from .predictor import Embedding, Predictor, Prompt


@dataclass
class AutoMask:
    """One automatic mask with the scores it was kept for."""

    mask: np.ndarray  # (H, W) bool
    score: float  # predicted IoU
    stability: float
    area: int


def generate(predictor: Predictor, embedding: Embedding, points_per_side: int = 16,
             pred_iou_thresh: float | None = None, stability_thresh: float = 0.92,
             nms_thresh: float = 0.7, batch_size: int = 64,
             progress: Callable[[float], None] | None = None) -> list[AutoMask]:
    """Masks for the whole image from a ``points_per_side``-squared grid of single positive clicks.

    ``pred_iou_thresh`` defaults to the model's own (SAM: 0.88; LiteMedSAM's IoU head scores low,
    so it is not used there). Returns masks sorted by predicted IoU, largest-score first.
    """
    thresh = predictor.spec.auto_iou_thresh if pred_iou_thresh is None else pred_iou_thresh
    h, w = embedding.geometry.original
    grid = build_point_grid(points_per_side) * np.array([w, h])
    grid = np.minimum(grid, [w - 1, h - 1])
    rh, rw = (int(np.ceil(s * 256 / embedding.geometry.input_size)) for s in embedding.geometry.resized)
    kept_logits, kept_scores, kept_stab = [], [], []
    for start in range(0, len(grid), batch_size):
        prompts = [Prompt(points=p[None], labels=np.ones(1)) for p in grid[start:start + batch_size]]
        low_res, scores = predictor.decode(prompts, embedding)
        low_res, scores = low_res.flatten(0, 1)[:, :rh, :rw], scores.flatten()
        stability = calculate_stability_score(low_res, 0.0, 1.0)
        keep = (scores >= thresh) & (stability >= stability_thresh) & ((low_res > 0).sum((1, 2)) > 0)
        kept_logits.append(low_res[keep])
        kept_scores.append(scores[keep])
        kept_stab.append(stability[keep])
        if progress:
            progress(min(1.0, (start + batch_size) / len(grid)))
    logits, scores, stability = torch.cat(kept_logits), torch.cat(kept_scores), torch.cat(kept_stab)
    if len(logits) == 0:
        return []
    boxes = batched_mask_to_box(logits > 0).float()
    keep = batched_nms(boxes, scores, torch.zeros_like(scores), nms_thresh)
    full = torch.nn.functional.interpolate(logits[keep][:, None], (h, w), mode="bilinear", align_corners=False)
    masks = (full[:, 0] > 0).numpy()
    return [AutoMask(m, float(s), float(st), int(m.sum()))
            for m, s, st in zip(masks, scores[keep], stability[keep]) if m.any()]


def label_map(masks: list[AutoMask], shape: tuple[int, int]) -> np.ndarray:
    """Paint masks largest first so smaller ones stay visible on top: (H, W) int32, 0 = none."""
    labels = np.zeros(shape, np.int32)
    for i, m in sorted(enumerate(masks, 1), key=lambda im: -im[1].area):
        labels[m.mask] = i
    return labels
