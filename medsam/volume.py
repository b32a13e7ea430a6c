"""One prompt to a whole structure: slice-by-slice propagation through a volume, as MedSAM's 3D recipe,
and a few prompts ("key slices") to it, with boxes interpolated between them.

The user prompts one slice (a box, or clicks with a click-trained model). That slice is segmented;
then each next slice, up and down, is prompted with the box of the previous slice's mask, enlarged by a
tenth of its size (at most ``MARGIN`` pixels). A direction stops at the volume's end, where the mask
vanishes (fewer than ``MIN_PIXELS``), or where it changes implausibly from the previous slice: its area grows or shrinks
more than ``MAX_AREA_CHANGE`` times, it overlaps the previous mask by less than ``MIN_OVERLAP`` IoU,
or what it covers no longer looks like the structure: its mean intensity lies more than
``MAX_INTENSITY_SHIFT`` standard deviations (of the prompted slice's mask) from the prompted
slice's mean *and* more than half way to the mean of the structure's surroundings there (the rest of
its box). A box always yields some mask, so past the structure's end the model outlines whatever
lies in the box; that tissue looks different.

With prompts on several slices of one axis (``propagate_keys``), each key slice is segmented from its
own prompt; every slice between two keys is prompted with a box interpolated linearly between theirs
(a key's box is the user's box, else the box of its mask), with no stop test: the user has said the
structure runs from one key to the next. Beyond the outermost keys it propagates as above. Each
slice's box then comes from the user, not from a chain of earlier masks, so errors do not add up from
slice to slice; on small structures this is what keeps a propagation near the per-slice bound
(msd_hippocampus, 5 keys: 0.58 3D DICE against 0.48 when the slices between keys are propagated from
the nearer key instead, and 0.38 from one box). Linear interpolation assumes the outline changes
steadily between two keys: a key belongs where the structure is widest and where it turns.

Only the slices visited are encoded, through the model's embedding cache. Masks live in
``Scan.data``'s orientation (RAS+ for oriented volumes); views, prompts and boxes are ``Scan.slice``'s pixels.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
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
    start: int  # the (first) prompted slice
    areas: dict[int, int] = field(default_factory=dict)  # slice -> mask pixels, for every slice kept
    stopped: dict[str, str] = field(default_factory=dict)  # direction ("up", "down") -> why it stopped
    encoded: int = 0  # slices the encoder ran on (the rest came from the cache)
    seconds: float = 0.0
    keys: list[int] = field(default_factory=list)  # the prompted slices

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


def interpolated_box(keys: Mapping[int, np.ndarray], i: int) -> np.ndarray:
    """The box of slice ``i`` between two key slices: their boxes (x0, y0, x1, y1) mixed linearly by distance."""
    below, above = max(k for k in keys if k <= i), min(k for k in keys if k >= i)
    if below == above:
        return np.asarray(keys[below], float)
    t = (i - below) / (above - below)
    return (1 - t) * np.asarray(keys[below], float) + t * np.asarray(keys[above], float)


class _Run:
    """One propagation's state: the slices segmented so far and how to segment another."""

    def __init__(self, predictor: Predictor, scan: Scan, window: WindowSpec, axis: int, start: int,
                 progress: Callable[[float, str], None] | None) -> None:
        self.predictor, self.scan, self.window, self.axis, self.progress = predictor, scan, window, axis, progress
        self.n = scan.n_slices(axis)
        self.out = Propagation(np.zeros(scan.data.shape, bool), axis, start)
        self.views: dict[int, np.ndarray] = {}  # slice -> its kept mask, in view pixels

    def segment(self, i: int, prompt: Prompt) -> tuple[np.ndarray, np.ndarray]:
        """Slice ``i``'s best mask for ``prompt``, and the slice's picture."""
        rgb = self.scan.render(self.window, self.axis, i)
        emb = self.predictor.set_image(rgb)
        self.out.encoded += not emb.cached
        return self.predictor.predict_batch([prompt], embedding=emb)[0].masks[0], rgb

    def keep(self, i: int, mask: np.ndarray) -> None:
        np.moveaxis(self.out.mask, self.axis, 0)[i] = self.scan.unview(mask)
        self.views[i] = mask
        self.out.areas[i] = int(mask.sum())
        if self.progress:
            self.progress(min(len(self.out.areas) / self.n, 1.0), f"slice {i}")

    def onward(self, direction: str, step: int, key: int, look: Appearance, margin: int) -> None:
        """From key slice ``key``, on slice by slice in ``step``'s direction until a stop test fires."""
        previous, i = self.views[key], key + step
        if previous.sum() < MIN_PIXELS:
            self.out.stopped[direction] = "the prompted slice gave no mask"
            return
        while True:
            if not 0 <= i < self.n:
                self.out.stopped[direction] = "the end of the volume"
                return
            mask, rgb = self.segment(i, Prompt(box=enlarged(previous, margin), multimask=False))
            reason = _why_stop(mask, previous, look.unlike(rgb, mask))
            if reason:
                self.out.stopped[direction] = f"slice {i}: {reason}"
                return
            self.keep(i, mask)
            previous, i = mask, i + step


def propagate(predictor: Predictor, scan: Scan, window: WindowSpec, axis: int, index: int, prompt: Prompt,
              progress: Callable[[float, str], None] | None = None, margin: int = MARGIN) -> Propagation:
    """Segment slice ``index`` along ``axis`` from ``prompt`` (view pixels), then propagate up and down."""
    return propagate_keys(predictor, scan, window, axis, {index: prompt}, progress, margin)


def propagate_keys(predictor: Predictor, scan: Scan, window: WindowSpec, axis: int, keys: Mapping[int, Prompt],
                   progress: Callable[[float, str], None] | None = None, margin: int = MARGIN) -> Propagation:
    """Segment each key slice along ``axis`` from its prompt (view pixels), the slices between two keys
    from interpolated boxes, and propagate beyond the outermost keys (see the module's docstring)."""
    if not keys:
        raise InputError("Prompt the structure on at least one slice.")
    start = time.perf_counter()
    order = sorted(keys)
    run = _Run(predictor, scan, window, axis, order[0], progress)
    run.out.keys = order
    boxes, pictures = {}, {}
    for k in order:
        mask, pictures[k] = run.segment(k, keys[k])
        run.keep(k, mask)
        box = keys[k].box if keys[k].box is not None else (bbox(mask) if mask.any() else None)
        if box is not None:
            boxes[k] = box
    for below, above in zip(order, order[1:]):
        for i in range(below + 1, above):
            if below in boxes and above in boxes:
                box = interpolated_box(boxes, i)
            else:  # a key gave no box (clicks, no mask): prompt from the previous slice's mask
                box = enlarged(run.views[i - 1], margin) if run.views.get(i - 1, np.zeros(1, bool)).any() else None
            mask = run.segment(i, Prompt(box=box, multimask=False))[0] if box is not None else None
            if mask is not None and mask.any():
                run.keep(i, mask)
    for direction, step, k in (("up", 1, order[-1]), ("down", -1, order[0])):
        mask = run.views[k]
        look = Appearance.of(pictures[k], mask, enlarged(mask, margin) if mask.any() else np.zeros(4))
        run.onward(direction, step, k, look, margin)
    run.out.seconds = time.perf_counter() - start
    return run.out


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
