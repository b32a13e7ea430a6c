"""Load pictures and medical scans, window them for display and write masks back.

Formats are detected from content (magic bytes) first and from the file name second:
PNG, JPEG, BMP, GIF and TIFF pictures, DICOM (single- and multi-frame) and NIfTI-1
(``.nii`` / ``.nii.gz``). Every bad input raises :class:`InputError` with a plain sentence.

Display convention for NIfTI volumes: data are reoriented to RAS+ and every 2D view is
``np.fliplr(np.rot90(plane))``: rows run from the highest to the lowest index of the
second remaining axis (anterior up for axial, superior up for coronal/sagittal) and
columns from the highest to the lowest index of the first one (patient left on the
right of the screen for axial/coronal, i.e. radiological; anterior on the left for sagittal).
"""

from __future__ import annotations

import gzip
import io
import math
import operator
import os
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
import pydicom
import tifffile
from nibabel.orientations import OrientationError, apply_orientation, axcodes2ornt, io_orientation, ornt_transform
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError
from PIL import Image
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from .errors import InputError, MedsamError

__all__ = [
    "MAX_ASPECT",
    "MAX_PIXELS",
    "MIN_SIDE",
    "VOLUME_FACTOR",
    "WINDOW_PRESETS",
    "Scan",
    "Window",
    "apply_window",
    "load_mask",
    "load_rgb",
    "load_scan",
    "save_mask_nifti",
    "save_mask_png",
    "to_rgb",
]


def _max_pixels_from_env() -> int:
    raw = os.environ.get("MEDSAM_MAX_PIXELS", "50000000")
    try:
        value = int(raw)
    except ValueError as exc:
        raise MedsamError(f"MEDSAM_MAX_PIXELS must be a positive integer, not {raw!r}.") from exc
    if value <= 0:
        raise MedsamError(f"MEDSAM_MAX_PIXELS must be a positive integer, not {raw!r}.")
    return value


MAX_PIXELS: int = _max_pixels_from_env()
"""Largest 2D image (H*W) or volume slice accepted; env MEDSAM_MAX_PIXELS overrides."""
VOLUME_FACTOR = 20
"""A volume may hold at most VOLUME_FACTOR * MAX_PIXELS voxels."""
MIN_SIDE = 8
"""Smallest accepted image side, in pixels."""
MAX_ASPECT = 100
"""Largest ratio of an image's longer side to its shorter one: models shrink the longer side to 256 or 1024 px."""
BYTES_PER_VOXEL_CAP = 4
"""Raw files and decompressed NIfTI data are capped at this many bytes per allowed voxel."""

# Pillow refuses larger images itself (warning above this, DecompressionBombError above twice this).
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


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
        plane = np.take(self.data, index, axis=axis)
        if self.oriented:
            plane = np.fliplr(np.rot90(plane))
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
        if self.oriented:
            plane = np.rot90(np.fliplr(plane), k=-1)
        volume = np.zeros(self.data.shape, np.uint8)
        np.moveaxis(volume, axis, 0)[index] = plane
        if self.oriented:
            # Undo the canonical (RAS+) reorientation done at load time.
            volume = apply_orientation(volume, ornt_transform(_RAS, io_orientation(self.affine)))
        return np.ascontiguousarray(volume)

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


def load_scan(source: Source, filename: str | None = None) -> Scan:
    """Load a picture, DICOM or NIfTI file (path or bytes); filename helps only when content is ambiguous."""
    raw, name = _read_source(source, filename)
    if not raw:
        raise InputError("The file is empty.")
    fmt = _sniff(raw, name)
    if fmt == "DICOM":
        return _load_dicom(raw, force=raw[128:132] != b"DICM")
    if fmt == "NIfTI":
        return _load_nifti(raw)
    if fmt == "TIFF":
        return _load_tiff(raw)
    return _load_pil(raw, fmt)


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


def load_rgb(
    source: Source,
    filename: str | None = None,
    window: WindowSpec | None = None,
    axis: int = 2,
    index: int | None = None,
) -> np.ndarray:
    """Load any supported file as an (H, W, 3) uint8 picture (a slice for volumes)."""
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


# --- reading ---------------------------------------------------------------------------------

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
    (b"BM", "BMP"),
    (b"\x1f\x8b", "NIfTI"),  # gzip: only .nii.gz is supported
)
_EXTENSIONS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".gif": "GIF",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".dcm": "DICOM",
    ".dicom": "DICOM",
    ".nii": "NIfTI",
}


def _max_bytes() -> int:
    return BYTES_PER_VOXEL_CAP * VOLUME_FACTOR * MAX_PIXELS


def _read_source(source: Source, filename: str | None) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), filename or ""
    try:
        path = Path(source)
    except TypeError as exc:
        raise InputError("Expected a file path or the file's bytes.") from exc
    try:
        if path.stat().st_size > _max_bytes():
            raise InputError(f"The file {path.name} is larger than the limit of {_max_bytes():,} bytes.")
        return path.read_bytes(), filename or path.name
    except FileNotFoundError as exc:
        raise InputError(f"The file {path.name} does not exist.") from exc
    except OSError as exc:
        raise InputError(f"The file {path.name} could not be read.") from exc


def _sniff(raw: bytes, name: str) -> str:
    if raw[128:132] == b"DICM":
        return "DICOM"
    for magic, fmt in _MAGIC:
        if raw.startswith(magic):
            return fmt
    if raw[344:348] == b"n+1\x00":
        return "NIfTI"
    lower = name.lower()
    if lower.endswith(".nii.gz"):
        raise InputError("The file is named .nii.gz but is not a valid gzip file.")
    ext = Path(lower).suffix
    fmt = _EXTENSIONS.get(ext)
    if fmt in ("DICOM", "NIfTI"):
        return fmt  # DICOM without preamble, or a NIfTI whose header will be reported as invalid
    if fmt:
        raise InputError(f"The file is named {ext} but its content is not a {fmt} image.")
    raise InputError("Unrecognised file type: expected PNG, JPEG, BMP, TIFF, DICOM or NIfTI.")


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
    if width * height > MAX_PIXELS:
        raise InputError(
            f"The image is {width}x{height} pixels ({width * height:,}); the limit is {MAX_PIXELS:,} pixels."
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
    if max(x * y, x * z, y * z) > MAX_PIXELS or total > VOLUME_FACTOR * MAX_PIXELS:
        raise InputError(
            f"The volume is {x}x{y}x{z} voxels ({total:,}); the limit is {MAX_PIXELS:,} pixels per slice "
            f"and {VOLUME_FACTOR * MAX_PIXELS:,} voxels in all."
        )


def _finite_float32(arr: np.ndarray) -> np.ndarray:
    """float32 copy with NaN and -inf set to the finite minimum and +inf to the finite maximum."""
    with np.errstate(over="ignore"):  # float64 beyond float32 range becomes inf, then clipped below
        data = np.array(arr, dtype=np.float32)
    bad = ~np.isfinite(data)
    if bad.any():
        finite = data[~bad]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        np.nan_to_num(data, copy=False, nan=lo, posinf=hi, neginf=lo)
    return data


def _composite_alpha(arr: np.ndarray) -> np.ndarray:
    """Drop the last (alpha) channel after compositing the colour over black; returns float32."""
    top = np.iinfo(arr.dtype).max if arr.dtype.kind in "ui" else 1.0
    return arr[..., :-1].astype(np.float32) * (arr[..., -1:].astype(np.float32) / top)


def _picture(arr: np.ndarray, kind: Literal["image", "dicom"] = "image", modality: str | None = None) -> Scan:
    """Normalise decoded pixels (gray, gray+alpha, RGB, RGBA) to a 2D Scan."""
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    eight_bit = arr.dtype == np.uint8
    if arr.ndim == 3 and arr.shape[2] in (2, 4):
        arr = _composite_alpha(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[2] == 3 and (arr == arr[..., :1]).all():
        arr = arr[..., 0]  # colour image with equal channels is gray
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise InputError(f"Images of shape {arr.shape} are not supported; expected gray or RGB pixels.")
    data = _finite_float32(arr)
    return Scan(data, kind, modality, default_window=STORED if eight_bit else PERCENTILE, rgb=data.ndim == 3)


def _pil_array(im: Image.Image) -> np.ndarray:
    """Decode the first frame of a PIL image: gray/RGB(A) at its own bit depth."""
    if im.mode == "1":
        im = im.convert("L")
    elif im.mode in ("P", "PA"):
        im = im.convert("RGBA")  # palettes may carry transparency
    elif im.mode not in ("L", "LA", "RGB", "RGBA", "I", "F") and not im.mode.startswith("I;16"):
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, premultiplied alpha...
    return np.asarray(im)


def _load_pil(raw: bytes, fmt: str) -> Scan:
    try:
        with warnings.catch_warnings():
            # Pillow warns between MAX_PIXELS and twice that; _check_image_size refuses with the size.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as im:
                _check_image_size(*im.size)  # from the header, before any pixel is decoded
                arr = _pil_array(im)
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise InputError(
            f"The image is too large: its header declares more than {2 * MAX_PIXELS:,} pixels "
            f"and the limit is {MAX_PIXELS:,}."
        ) from exc
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, EOFError... on bad data
        raise InputError(f"The {fmt} file is truncated or corrupt.") from exc
    return _picture(arr)


def _load_tiff(raw: bytes) -> Scan:
    """First page of a TIFF via tifffile; Pillow for palettes and codecs tifffile lacks (LZW, JPEG)."""
    try:
        with tifffile.TiffFile(io.BytesIO(raw)) as tif:
            page = tif.pages.first
            _check_image_size(page.imagewidth, page.imagelength)
            if page.photometric == tifffile.PHOTOMETRIC.PALETTE:
                return _load_pil(raw, "TIFF")
            arr = page.asarray()
            axes = page.axes
    except InputError:
        raise
    except Exception:  # missing codec (imagecodecs not installed) or damaged file: Pillow decides
        return _load_pil(raw, "TIFF")
    if axes.startswith("S"):  # planar configuration: samples first
        arr = np.moveaxis(arr, 0, -1)
    return _picture(arr)


def _dicom_window(ds: pydicom.Dataset) -> tuple[float, float] | None:
    """(WindowCenter, WindowWidth), first values if multi-valued; None if absent or invalid."""
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    try:
        level, span = (float(v[0] if isinstance(v, MultiValue) else v) for v in (center, width))
    except (TypeError, ValueError, IndexError):
        return None
    return (level, span) if math.isfinite(level) and math.isfinite(span) and span > 0 else None


def _transfer_syntax(ds: pydicom.Dataset) -> UID:
    """The transfer syntax (set on a bare dataset read with force=True); InputError if no decoder is installed."""
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, _ = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    try:
        decodable = get_decoder(syntax).is_available
    except NotImplementedError:
        decodable = False
    if not decodable:
        raise InputError(f"The DICOM transfer syntax {syntax.name} is not supported: no decoder is installed.")
    return syntax


def _load_dicom(raw: bytes, force: bool) -> Scan:
    try:
        ds = pydicom.dcmread(io.BytesIO(raw), force=force)
        rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
        frames = int(ds.get("NumberOfFrames") or 1)
        samples = int(ds.get("SamplesPerPixel") or 1)
        # pydicom parses elements on first access: read every tag used below here, where damage is caught.
        modality = str(ds.get("Modality") or "").strip() or None
        window = _dicom_window(ds)
        photometric = ds.get("PhotometricInterpretation")
    except Exception as exc:  # pydicom raises InvalidDicomError, EOFError, struct.error, NotImplementedError...
        raise InputError("The DICOM file is corrupt or unreadable.") from exc
    if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise InputError("The DICOM file has no pixel data.")
    volume = frames > 1 and samples == 1
    if volume:
        _check_volume_size((rows, cols, frames))
        if min(rows, cols) < MIN_SIDE:
            raise InputError(f"The frames are {cols}x{rows} pixels; they must be at least {MIN_SIDE}x{MIN_SIDE}.")
    else:
        _check_image_size(cols, rows)
    syntax = _transfer_syntax(ds)
    try:
        arr = ds.pixel_array
        if samples == 1:
            arr = apply_modality_lut(arr, ds)  # RescaleSlope/Intercept or Modality LUT -> e.g. HU
    except Exception as exc:  # decoder plugins raise many types on damaged data
        raise InputError(
            f"The DICOM pixel data (transfer syntax {syntax.name}) could not be decoded; the file may be corrupt."
        ) from exc
    if samples == 1 and photometric == "MONOCHROME1":
        # Low values are white: invert within the data range and mirror the window level.
        flip = float(arr.min()) + float(arr.max())
        arr = flip - arr.astype(np.float64)
        window = (flip - window[0], window[1]) if window else None
    if volume:
        data = _finite_float32(np.moveaxis(arr, 0, -1))  # frames along the last axis
        default = STORED if arr.dtype == np.uint8 else PERCENTILE
        scan = Scan(data, "dicom", modality, source_shape=data.shape, default_window=default)
    else:
        scan = _picture(arr[0] if frames > 1 else arr, "dicom", modality)  # colour cine: first frame
    scan.dicom_window = window
    if not scan.rgb and (window or modality == "CT"):
        scan.default_window = window or "CT soft tissue"
    return scan


def _load_nifti(raw: bytes) -> Scan:
    """NIfTI-1; 2D is read as (X, Y, 1) and 4D as its first volume. The header is checked before the data is read."""
    gzipped = raw.startswith(b"\x1f\x8b")
    stream = gzip.GzipFile(fileobj=io.BytesIO(raw)) if gzipped else io.BytesIO(raw)
    try:
        head = stream.read(348)
        if len(head) < 348:
            raise InputError("The NIfTI file is truncated.")
        header = nib.Nifti1Header.from_fileobj(io.BytesIO(head))
        if header["magic"] != b"n+1":
            raise InputError("Only single-file NIfTI-1 images (.nii, .nii.gz) are supported.")
        shape = header.get_data_shape()
        if not 2 <= len(shape) <= 4:
            raise InputError(f"The NIfTI image has {len(shape)} dimensions; 2, 3 or 4 are supported.")
        spatial = (tuple(shape) + (1,))[:3]
        _check_volume_size(spatial)
        dtype = header.get_data_dtype()
        if dtype.kind not in "biuf":
            raise InputError(f"NIfTI data of type {dtype} is not supported; expected integer or real values.")
        needed = int(header.get_data_offset()) + math.prod(shape) * dtype.itemsize
        if needed > _max_bytes():
            raise InputError(f"The NIfTI data needs {needed:,} bytes; the limit is {_max_bytes():,}.")
        body = head + stream.read(needed - len(head))  # never more than the header declares
        if len(body) < needed:
            raise InputError("The NIfTI file is truncated.")
        img = nib.Nifti1Image.from_bytes(body)
        proxy = img.dataobj
        arr = np.asarray(proxy[..., 0] if len(shape) == 4 else proxy).reshape(spatial)
        ornt = io_orientation(img.affine)
        data = _finite_float32(apply_orientation(arr, ornt))  # same as nib.as_closest_canonical
    except InputError:
        raise
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise InputError("The gzip file is truncated or corrupt.") from exc
    except OrientationError as exc:  # e.g. an all-zero sform: no direction for some voxel axis
        raise InputError("The NIfTI affine is degenerate (its voxel axes do not span 3D space), "
                         "so the image cannot be oriented.") from exc
    except (HeaderDataError, ImageFileError, ValueError) as exc:
        raise InputError("The file is not a valid NIfTI-1 image.") from exc
    default = STORED if arr.dtype == np.uint8 else "CT soft tissue" if _looks_like_ct(data) else PERCENTILE
    return Scan(data, "nifti", affine=img.affine.copy(), source_shape=spatial, default_window=default)


def _looks_like_ct(data: np.ndarray) -> bool:
    """Hounsfield units: air (about -1000) and tissue above 100 present, nothing below -3100 (a NIfTI
    file does not say its modality; MR intensities are not negative like this)."""
    lo, hi = np.percentile(data.ravel()[:: max(1, data.size // 200_000)], (1, 99))  # a sample suffices
    return bool(-1100 <= lo <= -500 and hi >= 100 and data.min() >= -3100)
