"""Prompt strategies of the COSMOS study and a corrective-click simulator, kept apart from models.

Everything here is a pure function of a ground-truth mask (H, W) bool and a numpy ``Generator``;
coordinates are original-image pixels, points (x, y), boxes [x0, y0, x1, y1] with inclusive corners.
Following the COSMOS code: the centre point is the centroid (image moments), extra positives are
uniform inside the mask, negatives uniform inside the box enlarged 2x but outside the mask, and
box jitter moves each edge by 0-10, 10-20 or 20-30 px.
"""

from __future__ import annotations

import zlib

import numpy as np
from scipy import ndimage

from .decoding import Prompt
from .metrics import components
from .strategies import STRATEGIES, Strategy

__all__ = [
    "STRATEGIES", "Strategy", "bbox", "center_point", "corrective_click", "enlarged_box",
    "interior_point", "jitter_box", "make_prompt", "negative_points", "random_points", "rng_for",
]


def rng_for(seed: int, *keys: str) -> np.random.Generator:
    """A generator seeded from ``seed`` and stable hashes (CRC32) of ``keys`` (e.g. mask path and
    strategy), so draws do not depend on run order, sharding or other strategies."""
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in keys)])


def _xy(flat_index: np.ndarray | int, width: int) -> np.ndarray:
    y, x = np.divmod(flat_index, width)
    return np.stack([x, y], axis=-1).astype(np.float64)


def interior_point(mask: np.ndarray) -> np.ndarray:
    """The pixel farthest from the region's boundary (EDT argmax; the image border counts as
    boundary, first in row-major order on ties) as (x, y)."""
    dist = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    return _xy(int(np.argmax(dist)), mask.shape[1])


def center_point(mask: np.ndarray) -> tuple[np.ndarray, bool]:
    """The centroid m10/m00, m01/m00 rounded to a pixel, as (x, y), and whether it fell outside
    the mask (ring, C shape), in which case the interior point is returned instead."""
    ys, xs = np.nonzero(mask)
    x, y = int(round(xs.mean())), int(round(ys.mean()))
    if mask[y, x]:
        return np.array([x, y], np.float64), False
    return interior_point(mask), True


def random_points(mask: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points drawn uniformly from the mask's pixels (without replacement when possible)."""
    flat = np.flatnonzero(mask)
    return _xy(rng.choice(flat, size=n, replace=flat.size < n), mask.shape[1])


def bbox(mask: np.ndarray) -> np.ndarray:
    """Tight box [x0, y0, x1, y1] of the mask's pixels; a one-pixel-thin extent is widened to two
    pixels (inside the image) so the box has area."""
    ys, xs = np.nonzero(mask)
    box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.float64)
    for lo, hi, size in ((0, 2, mask.shape[1]), (1, 3, mask.shape[0])):
        if box[hi] == box[lo]:
            box[hi], box[lo] = (box[hi] + 1, box[lo]) if box[hi] + 1 < size else (box[hi], box[lo] - 1)
    return box


def enlarged_box(box: np.ndarray, shape: tuple[int, int], factor: float = 2.0) -> np.ndarray:
    """The box scaled by ``factor`` about its centre, clipped to an image of ``shape`` (H, W)."""
    centre = (box[:2] + box[2:]) / 2
    half = (box[2:] - box[:2]) / 2 * factor
    lo = np.maximum(np.floor(centre - half), 0)
    hi = np.minimum(np.ceil(centre + half), [shape[1] - 1, shape[0] - 1])
    return np.concatenate([lo, hi])


def negative_points(mask: np.ndarray, n: int, rng: np.random.Generator,
                    outside: np.ndarray | None = None) -> np.ndarray:
    """``n`` points uniform inside the 2x-enlarged box of ``mask`` but outside ``outside``
    (default: the mask itself). Falls back to anywhere outside it when that area is empty;
    returns no points when the mask fills the image."""
    outside = mask if outside is None else outside
    x0, y0, x1, y1 = enlarged_box(bbox(mask), mask.shape).astype(int)
    region = np.zeros_like(mask)
    region[y0:y1 + 1, x0:x1 + 1] = True
    region &= ~outside
    if not region.any():
        region = ~outside
    if not region.any():
        return np.empty((0, 2))
    return random_points(region, n, rng)


def jitter_box(box: np.ndarray, low: float, high: float, rng: np.random.Generator,
               shape: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Move each edge by uniform(low, high) px with a random sign, then clip to the image.

    An edge is moved outwards instead of inwards where an inward move would leave no area.
    Returns the box and the jitter actually applied (after clipping) as
    mean |edge shift| / mean(box width, box height).
    """
    size = np.array([shape[1] - 1, shape[0] - 1] * 2, np.float64)
    mag = rng.uniform(low, high, 4)
    outward = np.array([-1, -1, 1, 1])
    sign = np.where(rng.random(4) < 0.5, -1, 1)  # per edge: +1 outwards, -1 inwards

    def place(signs: np.ndarray) -> np.ndarray:
        return np.clip(box + outward * signs * mag, 0, size)

    new = place(sign)
    for axis in (0, 1):
        if new[axis + 2] - new[axis] < 1:
            sign[[axis, axis + 2]] = 1
    new = place(sign)
    frac = np.abs(new - box).mean() / np.mean(box[2:] - box[:2])
    return new, float(frac)


def make_prompt(strategy: str, mask: np.ndarray, rng: np.random.Generator,
                gt: np.ndarray | None = None) -> tuple[Prompt, dict[str, float]]:
    """One multimask prompt of a "prompt"-kind strategy for ``mask`` (one component).

    ``gt`` is the whole ground truth (default: ``mask``): negatives avoid all of it. Also returns
    what the row records: ``center_fallback`` (0/1) for strategies with a centre point and
    ``jitter_frac`` for jittered boxes.
    """
    spec = STRATEGIES[strategy]
    if spec.kind != "prompt":
        raise ValueError(f"'{strategy}' is not a single-prompt strategy.")
    info: dict[str, float] = {}
    if strategy in ("point_center", "box_point"):
        point, fallback = center_point(mask)
        info["center_fallback"] = float(fallback)
        box = bbox(mask) if strategy == "box_point" else None
        return Prompt(point[None], np.ones(1), box), info
    if strategy == "point_random":
        return Prompt(random_points(mask, 1, rng), np.ones(1)), info
    if strategy in ("points_5pos", "points_5pos5neg"):
        pos = random_points(mask, 5, rng)
        neg = negative_points(mask, 5, rng, gt) if strategy == "points_5pos5neg" else np.empty((0, 2))
        labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        return Prompt(np.concatenate([pos, neg]), labels), info
    box = bbox(mask)
    if spec.jitter:
        box, info["jitter_frac"] = jitter_box(box, *spec.jitter, rng, mask.shape)
    return Prompt(box=box), info


def corrective_click(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, int] | None:
    """The next simulated click: the interior point of the largest error region, label 1 for a
    missed (false-negative) region and 0 for a false-positive one (ties go to the missed one).
    None when the prediction equals the ground truth."""
    regions = [(components(err, 1)[0], label) for err, label in ((gt & ~pred, 1), (pred & ~gt, 0))
               if err.any()]
    if not regions:
        return None
    region, label = max(regions, key=lambda r: np.count_nonzero(r[0]))
    return interior_point(region), label
