"""Load pictures and medical scans, window them for display and write masks back: the public API.

``load_scan`` reads PNG, JPEG, BMP, GIF and TIFF pictures, DICOM files (single- and multi-frame) and
NIfTI-1 volumes (``readers``) into a ``Scan`` (``scan``: the display convention, limits and
windowing); a DICOM series is read by ``medsam.series``, and ``load_any`` takes either (a folder, a
.zip or several files are a series). Every bad input raises :class:`InputError`
with a plain sentence.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from . import series
from .errors import InputError, MedsamError
from .readers import load_scan
from .scan import (
    MAX_ASPECT,
    MIN_SIDE,
    MINMAX,
    PERCENTILE,
    STORED,
    VOLUME_FACTOR,
    WINDOW_PRESETS,
    Scan,
    Source,
    Window,
    WindowSpec,
    _size,
    apply_window,
    to_rgb,
)

__all__ = [
    "MAX_ASPECT", "MIN_SIDE", "MINMAX", "PERCENTILE", "STORED", "VOLUME_FACTOR", "WINDOW_PRESETS",
    "Scan", "Window", "WindowSpec", "apply_window", "load_mask", "load_rgb", "load_scan", "save_mask_nifti",
    "save_mask_png", "to_rgb",
]


def load_rgb(
    source: Source,
    filename: str | None = None,
    window: WindowSpec | None = None,
    axis: int = 2,
    index: int | None = None,
) -> np.ndarray:
    """Load any supported file as an (H, W, 3) uint8 picture (a slice for volumes).

    Args:
        source: a path, or the file's bytes (pictures, DICOM, NIfTI).
        filename: the file's name, which helps only when the content is ambiguous (bytes).
        window: a ``WINDOW_PRESETS`` key, a (level, width) pair or a ``Window`` (default: the scan's own).
        axis: the axis a volume is sliced along (0, 1 or 2; ignored for 2D pictures).
        index: the slice along ``axis`` (default: the middle one).

    Returns:
        The windowed picture, ready for ``Predictor.set_image``.

    Raises:
        InputError: an unreadable, unsupported or oversized file, or a bad window or slice.
    """
    scan = load_scan(source, filename)
    image = scan.slice(axis, index)
    return to_rgb(apply_window(image, scan.default_window if window is None else window))


def load_mask(source: Source, shape: tuple[int, int] | None = None, filename: str | None = None) -> np.ndarray:
    """Load a binary ground-truth mask (0 and one foreground value) as bool (H, W); shape is the image's (H, W)."""
    scan = load_scan(source, filename)
    if scan.is_volume:
        raise InputError("The mask must be a 2D image, not a volume.")
    data = scan.data
    if scan.rgb:
        data = data @ np.array([0.2125, 0.7154, 0.0721], np.float32)  # luminance, as skimage rgb2gray
    values = np.unique(data)
    if values.size > 2 or (values.size == 2 and values[0] != 0):
        raise InputError(
            f"The mask has {values.size} distinct values; "
            "a binary mask (0 and one foreground value) is expected."
        )
    if shape is not None and data.shape != tuple(shape):
        raise InputError(f"The mask is {_size(data.shape)} pixels but the image is {_size(shape)}.")
    return data != 0


def save_mask_png(mask: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a 2D mask as an 8-bit PNG (foreground 255, background 0)."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise InputError("A PNG mask must be a 2D array.")
    path = Path(path)
    try:
        Image.fromarray(np.where(arr != 0, 255, 0).astype(np.uint8)).save(path, format="PNG")
    except OSError as exc:
        raise MedsamError(f"Could not write the mask file {path.name}.") from exc
    return path


def save_mask_nifti(mask2d: np.ndarray, scan: Scan, axis: int, index: int | None, path: str | os.PathLike) -> Path:
    """Write a slice mask as a uint8 NIfTI volume that overlays the source file (multi-frame DICOM: identity affine)."""
    if not scan.is_volume:
        raise InputError("NIfTI export needs a volume (NIfTI or multi-frame DICOM); save 2D masks as PNG.")
    path = Path(path)
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        raise InputError("A NIfTI mask file name must end in .nii or .nii.gz.")
    volume = scan.place_slice(mask2d, axis, index)
    affine = np.eye(4) if scan.affine is None else scan.affine
    try:
        nib.save(nib.Nifti1Image(volume, affine), path)
    except OSError as exc:
        raise MedsamError(f"Could not write the mask file {path.name}.") from exc
    return path


def load_any(source: str | Path | bytes | list[str | Path], filename: str | None = None) -> Scan:
    """One file as a picture, DICOM file or NIfTI volume; a folder, a .zip, or several files as one
    DICOM series."""
    paths = list(source) if isinstance(source, (list, tuple)) else None
    if paths is not None and len(paths) == 1:
        source, paths = paths[0], None
    if paths is not None:
        if not paths:
            raise InputError("No file was given.")
        return series.load_series(paths)
    if isinstance(source, (str, Path)) and (Path(source).is_dir() or str(source).lower().endswith(".zip")):
        return series.load_series(source)
    if isinstance(source, bytes) and series.is_zip(source):
        return series.load_series(source)
    return load_scan(source, filename)
