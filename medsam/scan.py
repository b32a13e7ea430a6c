"""A loaded image or volume (``Scan``), its size limits, and windowing to 8-bit for display.

Display convention for oriented volumes (NIfTI, DICOM series): data are in RAS+ and every 2D view
is ``np.fliplr(np.rot90(plane))``: rows run from the highest to the lowest index of the second
remaining axis (anterior up for axial, superior up for coronal/sagittal) and columns from the highest
to the lowest index of the first one (patient left on the right of the screen for axial/coronal,
i.e. radiological; anterior on the left for sagittal). Every bad input raises ``InputError`` with a
plain sentence.
"""

from __future__ import annotations

import math
import operator
import os
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

from .errors import InputError
from .settings import settings


def max_pixels() -> int:
    """Largest 2D image (H*W) or volume slice accepted (``MEDSAM_MAX_PIXELS``)."""
    return settings().max_pixels


VOLUME_FACTOR = 20
"""A volume may hold at most VOLUME_FACTOR times the pixel limit (``MEDSAM_MAX_PIXELS``) in voxels."""
MIN_SIDE = 8
"""Smallest accepted image side, in pixels."""
MAX_ASPECT = 100
"""Largest ratio of an image's longer side to its shorter one: models shrink the longer side to 256 or 1024 px."""
BYTES_PER_VOXEL_CAP = 4
"""Raw files and decompressed NIfTI data are capped at this many bytes per allowed voxel."""

@dataclass(frozen=True)
class Window:
    """How stored values map to 0..255: kind "stored", "level" (level/width), "percentile" or "minmax"."""

    kind: Literal["stored", "level", "percentile", "minmax"]
    level: float = 0.0
    width: float = 0.0


STORED = "None (as stored)"
PERCENTILE = "MR percentile 0.5-99.5"
MINMAX = "Min-max"
PERCENTILES = (0.5, 99.5)
WINDOW_PRESETS: dict[str, Window] = {
    STORED: Window("stored"),
    "CT soft tissue": Window("level", 40.0, 400.0),
    "CT lung": Window("level", -600.0, 1500.0),
    "CT bone": Window("level", 400.0, 1800.0),
    "CT brain": Window("level", 40.0, 80.0),
    PERCENTILE: Window("percentile"),
    MINMAX: Window("minmax"),
}

WindowSpec = str | tuple[float, float] | Window
Source = str | os.PathLike | bytes

_RAS = axcodes2ornt("RAS")

@dataclass
class Scan:
    """A loaded image: a 2D picture or a 3D volume, with what is needed to write masks back.

    data is float32: (H, W) gray or (H, W, 3) RGB for pictures; (X, Y, Z) in RAS+ for NIfTI and
    DICOM series (``oriented``: they carry an affine and share the display convention);
    (rows, cols, frames) for multi-frame DICOM. default_window is a WINDOW_PRESETS key or,
    for DICOM files carrying WindowCenter/WindowWidth, that (level, width) pair.
    """

    data: np.ndarray
    kind: Literal["image", "dicom", "nifti", "series"]
    modality: str | None = None
    affine: np.ndarray | None = None
    source_shape: tuple[int, ...] | None = None
    default_window: str | tuple[float, float] = STORED
    rgb: bool = False
    dicom_window: tuple[float, float] | None = None
    headers: list | None = field(default=None, repr=False, compare=False)  # a DICOM series' slice headers
    _fixed: dict[str, Window] = field(default_factory=dict, repr=False, compare=False)  # see fixed_window

    @property
    def oriented(self) -> bool:
        """True for volumes in RAS+ with an affine (NIfTI, DICOM series): shown radiologically."""
        return self.kind in ("nifti", "series")

    @property
    def is_volume(self) -> bool:
        """True for 3D volumes (not RGB pictures)."""
        return self.data.ndim == 3 and not self.rgb

    def n_slices(self, axis: int = 2) -> int:
        """Number of slices along axis (1 for a 2D picture)."""
        if not self.is_volume:
            return 1
        return self.data.shape[_check_axis(axis)]

    def slice(self, axis: int = 2, index: int | None = None) -> np.ndarray:
        """2D float32 view for display; index None is the middle slice. 2D pictures are returned as is."""
        if not self.is_volume:
            return self.data
        axis, index = self._locate(axis, index)
        plane = self.view(self.data, axis, index)
        h, w = plane.shape
        if min(h, w) < MIN_SIDE:
            raise InputError(f"This view is {w}x{h} pixels; it must be at least {MIN_SIDE}x{MIN_SIDE}.")
        _check_aspect(w, h, "This view")
        return np.ascontiguousarray(plane)

    def place_slice(self, mask2d: np.ndarray, axis: int, index: int | None) -> np.ndarray:
        """Inverse of slice(): a uint8 0/1 array in the source file's shape and voxel order."""
        mask = np.asarray(mask2d)
        expected = self.slice(axis, index).shape[:2]
        if mask.shape != expected:
            raise InputError(
                f"The mask is {_size(mask.shape)} pixels but the slice is {_size(expected)}."
            )
        plane = (mask != 0).astype(np.uint8)
        if not self.is_volume:
            return plane
        axis, index = self._locate(axis, index)
        volume = np.zeros(self.data.shape, np.uint8)
        np.moveaxis(volume, axis, 0)[index] = self.unview(plane)
        return self.to_source(volume)

    def source_to_view(self, axis: int, index: int, points: np.ndarray) -> tuple[int, int, np.ndarray]:
        """A slice and (x, y) points given in the source array's voxel indices (x along the first
        remaining source axis, y along the second) -> the view's axis, slice and (x, y) pixels."""
        shape = self.source_shape or self.data.shape
        if not 0 <= axis <= 2 or not 0 <= index < shape[axis]:
            raise InputError(f"Slice {index} along axis {axis} is outside the {'x'.join(map(str, shape))} volume.")
        ornt = io_orientation(self.affine) if self.oriented else np.array([[0, 1], [1, 1], [2, 1]])
        u, v = (a for a in range(3) if a != axis)
        pts = np.asarray(points, float).reshape(-1, 2)
        src = np.zeros((len(pts), 3))
        src[:, axis], src[:, u], src[:, v] = index, pts[:, 0], pts[:, 1]
        data = np.zeros_like(src)
        for s_axis, (d_axis, flip) in enumerate(ornt):
            data[:, int(d_axis)] = src[:, s_axis] if flip > 0 else shape[s_axis] - 1 - src[:, s_axis]
        d_axis, flip = int(ornt[axis, 0]), ornt[axis, 1]
        d_index = index if flip > 0 else shape[axis] - 1 - index
        f, g = (a for a in range(3) if a != d_axis)
        if self.oriented:  # V[i, j] = P[nf - 1 - j, ng - 1 - i]: x = nf - 1 - a, y = ng - 1 - b
            view = np.stack([self.data.shape[f] - 1 - data[:, f], self.data.shape[g] - 1 - data[:, g]], 1)
        else:
            view = np.stack([data[:, g], data[:, f]], 1)
        return d_axis, int(d_index), view

    def fixed_window(self, window: WindowSpec) -> WindowSpec:
        """For a volume, a percentile or min-max window as one level/width for all its slices,
        computed over the whole volume (per slice, each slice would get its own contrast); else as is."""
        spec = _resolve_window(window)
        if not self.is_volume or spec.kind not in ("percentile", "minmax"):
            return window
        if spec.kind not in self._fixed:
            sample = self.data.ravel()[:: max(1, self.data.size // 2_000_000)]
            lo, hi = float(sample.min()), float(sample.max())
            if spec.kind == "percentile":
                p_lo, p_hi = (float(p) for p in np.percentile(sample, PERCENTILES))
                lo, hi = (p_lo, p_hi) if p_hi > p_lo else (lo, hi)
            self._fixed[spec.kind] = Window("level", (lo + hi) / 2, max(hi - lo, 1e-6))
        return self._fixed[spec.kind]

    def render(self, window: WindowSpec, axis: int = 2, index: int | None = None) -> np.ndarray:
        """The RGB uint8 picture the app shows: the view (a volume's slice) through ``window``."""
        return to_rgb(apply_window(self.slice(axis, index), self.fixed_window(window)))

    def view(self, volume: np.ndarray, axis: int, index: int) -> np.ndarray:
        """Slice ``index`` along ``axis`` of a volume shaped like ``data`` (a mask, a label map), turned as
        the display shows ``data`` (the module docstring's convention)."""
        plane = np.take(volume, index, axis=axis)
        return np.fliplr(np.rot90(plane)) if self.oriented else plane

    def unview(self, plane: np.ndarray) -> np.ndarray:
        """A 2D array shaped like a view (``slice``) back in the orientation of ``data``'s axes."""
        return np.rot90(np.fliplr(plane), k=-1) if self.oriented else plane

    def to_source(self, volume: np.ndarray) -> np.ndarray:
        """A volume shaped and ordered like ``data`` in the source file's voxel order (undoes the
        RAS+ reorientation done at load time)."""
        if self.oriented:
            volume = apply_orientation(volume, ornt_transform(_RAS, io_orientation(self.affine)))
        return np.ascontiguousarray(volume)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size along ``data``'s axes (mm for NIfTI and DICOM series; 1 where unknown)."""
        if self.affine is None or not self.is_volume:
            return (1.0, 1.0, 1.0)
        zooms = np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))  # per source axis
        out = [1.0, 1.0, 1.0]
        for source_axis, (data_axis, _) in enumerate(io_orientation(self.affine)):
            out[int(data_axis)] = float(zooms[source_axis])
        return (out[0], out[1], out[2])

    def view_spacing(self, axis: int) -> tuple[float, float]:
        """(row, column) pixel size of a view along ``axis``: rows run along the second remaining
        data axis and columns along the first (see the module docstring)."""
        first, second = (a for a in range(3) if a != axis)
        s = self.spacing
        return (s[second], s[first]) if self.oriented else (s[first], s[second])

    def _locate(self, axis: int, index: int | None) -> tuple[int, int]:
        axis = _check_axis(axis)
        n = self.data.shape[axis]
        try:
            index = n // 2 if index is None else operator.index(index)
        except TypeError as exc:
            raise InputError("The slice index must be a whole number.") from exc
        if not 0 <= index < n:
            raise InputError(f"Slice {index} is out of range: axis {axis} has slices 0 to {n - 1}.")
        return axis, index

def apply_window(image: np.ndarray, window: WindowSpec) -> np.ndarray:
    """Map a float (H, W) or (H, W, 3) image to uint8 with a preset key, a (level, width) pair or a Window.

    Percentiles are taken over all pixels (all channels) and fall back to min-max when
    they coincide; a constant image becomes zeros. Values are expected to be finite.
    """
    img = np.asarray(image)
    if img.size == 0 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise InputError("Windowing expects a gray (H, W) or colour (H, W, 3) image.")
    spec = _resolve_window(window)
    x = img.astype(np.float32, copy=False)
    if spec.kind == "stored":
        lo, hi = 0.0, 255.0
    elif spec.kind == "level":
        lo, hi = spec.level - spec.width / 2, spec.level + spec.width / 2
    else:
        lo, hi = float(x.min()), float(x.max())
        if spec.kind == "percentile":
            p_lo, p_hi = (float(p) for p in np.percentile(x, PERCENTILES))
            if p_hi > p_lo:
                lo, hi = p_lo, p_hi
        if hi <= lo:
            return np.zeros(img.shape, np.uint8)
    scaled = (np.clip(x, lo, hi) - lo) * (255.0 / (hi - lo))
    return np.rint(scaled).astype(np.uint8)


def to_rgb(image_uint8: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8 -> contiguous (H, W, 3) uint8 (alpha composited over black)."""
    img = np.asarray(image_uint8)
    if img.dtype != np.uint8:
        raise InputError(f"Expected an 8-bit image, got {img.dtype} values.")
    if img.ndim == 3 and img.shape[2] == 4:
        img = np.rint(_composite_alpha(img)).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3:
        raise InputError(f"Cannot make an RGB picture from an array of shape {img.shape}.")
    return np.ascontiguousarray(img)

def _max_bytes() -> int:
    return BYTES_PER_VOXEL_CAP * VOLUME_FACTOR * max_pixels()

def _size(shape: tuple[int, ...]) -> str:
    """'WxH' from an (H, W, ...) shape."""
    return f"{shape[1]}x{shape[0]}"


def _resolve_window(window: WindowSpec) -> Window:
    if isinstance(window, str):
        if window not in WINDOW_PRESETS:
            raise InputError(f"Unknown window {window!r}; choose one of: {', '.join(WINDOW_PRESETS)}.")
        return WINDOW_PRESETS[window]
    if isinstance(window, Window):
        spec = window
    else:
        try:
            level, width = (float(v) for v in window)
        except (TypeError, ValueError) as exc:
            raise InputError("A custom window must be a (level, width) pair of numbers.") from exc
        spec = Window("level", level, width)
    if spec.kind == "level" and not (math.isfinite(spec.level) and math.isfinite(spec.width) and spec.width > 0):
        raise InputError(f"The window width must be a positive number, not {spec.width:g}.")
    return spec


def _check_axis(axis: int) -> int:
    if axis not in (0, 1, 2):
        raise InputError("The slice axis must be 0, 1 or 2.")
    return int(axis)


def _check_image_size(width: int, height: int) -> None:
    if min(width, height) < MIN_SIDE:
        raise InputError(f"The image is {width}x{height} pixels; it must be at least {MIN_SIDE}x{MIN_SIDE}.")
    _check_aspect(width, height, "The image")
    if width * height > max_pixels():
        raise InputError(
            f"The image is {width}x{height} pixels ({width * height:,}); the limit is {max_pixels():,} pixels."
        )


def _check_aspect(width: int, height: int, what: str) -> None:
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise InputError(f"{what} is {width}x{height} pixels; its longer side may be at most {MAX_ASPECT} times "
                         f"its shorter side.")


def _check_volume_size(shape: tuple[int, ...]) -> None:
    x, y, z = shape
    total = x * y * z
    if total == 0:
        raise InputError("The volume has no voxels.")
    limit = max_pixels()
    if max(x * y, x * z, y * z) > limit or total > VOLUME_FACTOR * limit:
        raise InputError(
            f"The volume is {x}x{y}x{z} voxels ({total:,}); the limit is {limit:,} pixels per slice "
            f"and {VOLUME_FACTOR * limit:,} voxels in all."
        )


def _composite_alpha(arr: np.ndarray) -> np.ndarray:
    """Drop the last (alpha) channel after compositing the colour over black; returns float32."""
    top = np.iinfo(arr.dtype).max if arr.dtype.kind in "ui" else 1.0
    return arr[..., :-1].astype(np.float32) * (arr[..., -1:].astype(np.float32) / top)
