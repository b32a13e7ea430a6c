"""Read picture, DICOM and NIfTI files into ``Scan``s, checking sizes from headers before decoding.

Formats are detected from content (magic bytes) first and from the file name second: PNG, JPEG,
BMP, GIF and TIFF pictures, DICOM (single- and multi-frame) and NIfTI-1 (``.nii`` / ``.nii.gz``).
NIfTI volumes are reoriented to RAS+ (``scan`` module docstring). Every bad input raises
``InputError`` with a plain sentence.
"""

from __future__ import annotations

import gzip
import io
import math
import warnings
import zlib
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
import pydicom
import tifffile
from nibabel.filebasedimages import ImageFileError
from nibabel.orientations import OrientationError, apply_orientation, io_orientation
from nibabel.spatialimages import HeaderDataError
from PIL import Image
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from .errors import InputError
from .scan import (
    MIN_SIDE,
    PERCENTILE,
    STORED,
    Scan,
    Source,
    _check_image_size,
    _check_volume_size,
    _composite_alpha,
    _max_bytes,
    max_pixels,
)

PILLOW_LIMIT = Image.MAX_IMAGE_PIXELS  # Pillow's default decompression-bomb limit


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
    # Pillow refuses images over twice its own limit before we see their size: never below ours
    Image.MAX_IMAGE_PIXELS = max(max_pixels(), PILLOW_LIMIT)
    try:
        with warnings.catch_warnings():
            # Pillow warns between its limit and twice that; _check_image_size refuses with the size.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as im:
                _check_image_size(*im.size)  # from the header, before any pixel is decoded
                arr = _pil_array(im)
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise InputError(
            f"The image is too large: its header declares more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels "
            f"and the limit is {max_pixels():,}."
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
