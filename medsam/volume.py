"""One prompt to a whole structure: slice-by-slice propagation through a volume, as MedSAM's 3D recipe.

The user prompts one slice (a box, or clicks with a click-trained model). That slice is segmented;
then each next slice, up and down, is prompted with the box of the previous slice's mask, enlarged by a
tenth of its size (at most ``MARGIN`` pixels). A direction stops at the volume's end, where the mask
vanishes (fewer than ``MIN_PIXELS``), or where it changes implausibly from the previous slice: its area grows or shrinks
more than ``MAX_AREA_CHANGE`` times, it overlaps the previous mask by less than ``MIN_OVERLAP`` IoU,
or what it covers no longer looks like the structure: its mean intensity lies more than
``MAX_INTENSITY_SHIFT`` standard deviations (of the prompted slice's mask) from the prompted
slice's mean *and* more than half way to the mean of the structure's surroundings there (the rest of
its box). A box always yields some mask, so past the structure's end the model outlines whatever
lies in the box; that tissue looks different. Only the slices visited are encoded, through the model's embedding
cache. Masks live in ``Scan.data``'s orientation (RAS+ for oriented volumes); views are ``Scan.slice``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .metrics import iou
from .predictor import Predictor, Prompt
from .prompts import bbox
from .scan import Scan, WindowSpec

MARGIN = 5  # px added at most around the previous slice's mask box
MIN_PIXELS = 10
MAX_AREA_CHANGE = 3.0
MIN_OVERLAP = 0.1
MAX_INTENSITY_SHIFT = 2.5
MIN_SPREAD = 4.0  # gray levels: the smallest standard deviation the intensity test divides by


@dataclass
class Propagation:
    """A structure segmented through a volume: its voxels and how the propagation went."""

    mask: np.ndarray  # (X, Y, Z) bool, in Scan.data's orientation
    axis: int
    start: int
    areas: dict[int, int] = field(default_factory=dict)  # slice -> mask pixels, for every slice kept
    stopped: dict[str, str] = field(default_factory=dict)  # direction ("up", "down") -> why it stopped
    encoded: int = 0  # slices the encoder ran on (the rest came from the cache)
    seconds: float = 0.0

    @property
    def slices(self) -> list[int]:
        return sorted(self.areas)


def enlarged(mask: np.ndarray, margin: int = MARGIN) -> np.ndarray:
    """The mask's tight box grown on each side by a tenth of its longer side, at least 1 and at most
    ``margin`` pixels (small structures on small slices get small margins), inside the slice."""
    x0, y0, x1, y1 = bbox(mask)
    margin = int(np.clip(round(0.1 * max(x1 - x0, y1 - y0)), 1, margin))
    h, w = mask.shape
    return np.array([max(x0 - margin, 0), max(y0 - margin, 0), min(x1 + margin, w - 1), min(y1 + margin, h - 1)])


@dataclass(frozen=True)
class Appearance:
    """The gray levels of a structure on its prompted slice: inside the mask, and around it in its box."""

    mean: float
    spread: float
    around: float

    @classmethod
    def of(cls, rgb: np.ndarray, mask: np.ndarray, box: np.ndarray) -> Appearance:
        gray = rgb.mean(axis=2)
        x0, y0, x1, y1 = (int(v) for v in box)
        ring = np.zeros_like(mask)
        ring[y0:y1 + 1, x0:x1 + 1] = True
        ring &= ~mask
        inside = gray[mask]
        if not inside.size:
            return cls(0.0, MIN_SPREAD, 0.0)
        return cls(float(inside.mean()), max(float(inside.std()), MIN_SPREAD),
                   float(gray[ring].mean()) if ring.any() else float(inside.mean()))

    def unlike(self, rgb: np.ndarray, mask: np.ndarray) -> float | None:
        """How many standard deviations the mean under ``mask`` lies from the structure's, if it also
        lies more than half way to its surroundings' mean; else None (it still looks like it)."""
        if not mask.any():
            return None
        mean = float(rgb.mean(axis=2)[mask].mean())
        sds = abs(mean - self.mean) / self.spread
        toward = (mean - self.mean) / (self.around - self.mean) if self.around != self.mean else 0.0
        return sds if sds > MAX_INTENSITY_SHIFT and toward > 0.5 else None


def _why_stop(mask: np.ndarray, previous: np.ndarray, shift: float | None) -> str | None:
    area, before = int(mask.sum()), int(previous.sum())
    if area < MIN_PIXELS:
        return "the mask vanished"
    if area > MAX_AREA_CHANGE * before or area * MAX_AREA_CHANGE < before:
        return f"its area changed from {before} to {area} pixels"
    if iou(mask, previous) < MIN_OVERLAP:
        return "it no longer overlapped the previous slice"
    if shift is not None:
        return f"what it covered no longer looked like the structure ({shift:.1f} SD from its mean intensity)"
    return None


def propagate(predictor: Predictor, scan: Scan, window: WindowSpec, axis: int, index: int, prompt: Prompt,
              progress: Callable[[float, str], None] | None = None, margin: int = MARGIN) -> Propagation:
    """Segment slice ``index`` along ``axis`` from ``prompt`` (view pixels), then propagate up and down."""
    start = time.perf_counter()
    n = scan.n_slices(axis)
    out = Propagation(np.zeros(scan.data.shape, bool), axis, index)

    def segment(i: int, p: Prompt) -> tuple[np.ndarray, np.ndarray]:
        rgb = scan.render(window, axis, i)
        emb = predictor.set_image(rgb)
        out.encoded += not emb.cached
        return predictor.predict_batch([p], embedding=emb)[0].masks[0], rgb

    def keep(i: int, mask: np.ndarray) -> None:
        np.moveaxis(out.mask, axis, 0)[i] = scan.unview(mask)
        out.areas[i] = int(mask.sum())
        if progress:
            progress(min(len(out.areas) / n, 1.0), f"slice {i}")

    first, rgb = segment(index, prompt)
    look = Appearance.of(rgb, first, enlarged(first, margin) if first.any() else np.zeros(4))
    keep(index, first)
    if first.sum() < MIN_PIXELS:
        out.stopped = {"up": "the prompted slice gave no mask", "down": "the prompted slice gave no mask"}
    for direction, step in (("up", 1), ("down", -1)):
        previous, i = first, index + step
        while direction not in out.stopped:
            if not 0 <= i < n:
                out.stopped[direction] = "the end of the volume"
                break
            mask, rgb = segment(i, Prompt(box=enlarged(previous, margin), multimask=False))
            reason = _why_stop(mask, previous, look.unlike(rgb, mask))
            if reason:
                out.stopped[direction] = f"slice {i}: {reason}"
                break
            keep(i, mask)
            previous, i = mask, i + step
    out.seconds = time.perf_counter() - start
    return out


def every_slice(predictor: Predictor, scan: Scan, window: WindowSpec, axis: int, reference: np.ndarray,
                margin: int = 0) -> np.ndarray:
    """The per-slice upper bound MedSAM reports: each slice where ``reference`` (data orientation) has
    the structure prompted with its own tight box. Returns the (X, Y, Z) mask."""
    out = np.zeros(scan.data.shape, bool)
    for i in np.flatnonzero(np.moveaxis(reference, axis, 0).any(axis=(1, 2))):
        gt = scan.view(reference, axis, int(i))
        emb = predictor.set_image(scan.render(window, axis, int(i)))
        mask = predictor.predict_batch([Prompt(box=enlarged(gt, margin), multimask=False)], embedding=emb)[0].masks[0]
        np.moveaxis(out, axis, 0)[i] = scan.unview(mask)
    return out


def volume_ml(mask: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """The mask's volume in mL (spacing in mm)."""
    return float(mask.sum() * np.prod(spacing) / 1000.0)
