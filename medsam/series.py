"""Load a DICOM series (one single-frame grayscale slice per file) as one volume in RAS+.

Sources: a folder (searched recursively; hidden files and folders and DICOMDIR skipped), a list of
file paths, a .zip archive (bytes or path; read in memory, never extracted) or a list of
(name, bytes) pairs. Files that are not DICOM (no "DICM" preamble and no .dcm/.dicom/.ima name) and
DICOM objects without an image (reports, DICOMDIR) are ignored.

Geometry: ImageOrientationPatient holds the row direction r (along which the column index
increases) and the column direction c (along which the row index increases), both in LPS;
the slice normal is n = r x c and slices are sorted by dot(ImagePositionPatient, n). PixelSpacing
is (spacing between rows, spacing between columns). The stacked array is arr[i, j, k] with
i = column index, j = row index, k = sorted slice; its voxel->LPS affine has columns
r * column spacing, c * row spacing, (IPP_last - IPP_first) / (K - 1) (a single slice: n times
SpacingBetweenSlices or SliceThickness) and origin IPP_first; diag(-1, -1, 1, 1) turns it into
voxel->RAS. Scan.affine is that voxel->RAS affine of the stacked array and Scan.data the array
reoriented to RAS+ like NIfTI (readers._load_nifti), so Scan.place_slice undoes it the same way.
Values go through the modality LUT (RescaleSlope/Intercept: CT in HU) slice by slice; MONOCHROME1
is inverted within the volume's range. Every bad input raises InputError with a plain sentence.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from nibabel.orientations import apply_orientation, io_orientation
from pydicom.pixels import apply_modality_lut

from .errors import InputError
from .readers import _dicom_window, _finite_float32, _read_source, _transfer_syntax
from .scan import PERCENTILE, Scan, _check_image_size, _check_volume_size, _max_bytes

__all__ = ["MAX_FILES", "SPACING_TOLERANCE", "is_zip", "load_series", "read_series"]

MAX_FILES = 5000
"""Most files (folder or .zip members) considered for one series."""
SPACING_TOLERANCE = 0.01
"""Largest relative deviation of a slice gap from the mean gap (larger: a slice is missing)."""
_DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
_USED_TAGS = ("SeriesInstanceUID", "PhotometricInterpretation", "Modality", "WindowCenter", "WindowWidth",
              "SpacingBetweenSlices", "SliceThickness")
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

SeriesSource = str | os.PathLike | bytes | Sequence[str | os.PathLike] | Sequence[tuple[str, bytes]]
_Member = tuple[str, bytes | Path]  # file name, and its content or where to read it


@dataclass
class _Slice:
    """One DICOM file's header and where to read its pixels again."""

    name: str
    content: bytes | Path
    force: bool
    ds: pydicom.Dataset
    shape: tuple[int, int]  # (Rows, Columns)
    ipp: np.ndarray | None
    iop: np.ndarray | None
    spacing: np.ndarray | None


def is_zip(raw: bytes) -> bool:
    """True if raw starts like a .zip archive (local file header magic)."""
    return bytes(raw[:4]) == b"PK\x03\x04"


def load_series(source: SeriesSource) -> Scan:
    """Load a DICOM series as a Scan of kind "series": float32 (X, Y, Z) in RAS+ with its affine and
    its slice headers (``Scan.headers``, for a DICOM-SEG export)."""
    scan, headers = read_series(source)
    scan.headers = headers
    return scan


def read_series(source: SeriesSource) -> tuple[Scan, list[pydicom.Dataset]]:
    """load_series plus the slice headers (read without pixel data), in the order of the stacked slices."""
    slices = _read_headers(_members(source))
    _check_consistent(slices)
    slices, affine_lps = _geometry(slices)
    rows, cols = slices[0].shape
    _check_volume_size((cols, rows, len(slices)))
    volume = _stack(slices)
    first = slices[0].ds
    window = _dicom_window(first)
    if first.get("PhotometricInterpretation") == "MONOCHROME1":
        flip = float(volume.min()) + float(volume.max())  # low values are white: invert, mirror the level
        volume = flip - volume
        window = (flip - window[0], window[1]) if window else None
    modality = str(first.get("Modality") or "").strip() or None
    affine = _LPS_TO_RAS @ affine_lps
    data = np.ascontiguousarray(apply_orientation(volume, io_orientation(affine)))
    default = window or ("CT soft tissue" if modality == "CT" else PERCENTILE)
    scan = Scan(data, "series", modality, affine=affine, source_shape=volume.shape,
                default_window=default, dicom_window=window)
    return scan, [s.ds for s in slices]


# --- gathering files -------------------------------------------------------------------------


def _members(source: SeriesSource) -> list[_Member]:
    """(name, bytes or path) of every candidate file in the source."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not is_zip(source):
            raise InputError("The bytes given are not a .zip archive; give a folder, a .zip file or DICOM files.")
        return _zip_members(bytes(source))
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            return _folder_members(path)
        raw = _read_source(path, None)[0]
        return _zip_members(raw) if is_zip(raw) else [(path.name, raw)]
    if not isinstance(source, (list, tuple)) or not source:
        raise InputError("Expected a folder, a .zip file or a non-empty list of DICOM files.")
    members: list[_Member] = []
    for item in source:
        if isinstance(item, (str, os.PathLike)):
            members.append((Path(item).name, Path(item)))
        elif (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
              and isinstance(item[1], (bytes, bytearray))):
            members.append((item[0], bytes(item[1])))
        else:
            raise InputError("Each file must be given as a path or as a (name, bytes) pair.")
    _check_total([m for _, m in members])
    return members


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.upper() == "DICOMDIR"


def _folder_members(folder: Path) -> list[_Member]:
    files: list[Path] = []
    for root, dirs, names in os.walk(folder):  # symlinked folders are not followed
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [Path(root, n) for n in sorted(names) if not _hidden(n)]
        if len(files) > MAX_FILES:
            raise InputError(f"The folder {folder.name} holds more than {MAX_FILES:,} files; "
                             "give one series at a time.")
    _check_total(files)
    return [(f.name, f) for f in files]


def _check_total(contents: Sequence[bytes | Path]) -> None:
    if len(contents) > MAX_FILES:
        raise InputError(f"Too many files were given ({len(contents):,}); at most {MAX_FILES:,} are accepted.")
    total = 0
    for content in contents:
        try:
            total += len(content) if isinstance(content, bytes) else content.stat().st_size
        except OSError as exc:
            raise InputError(f"The file {content.name} does not exist or could not be read.") from exc
    if total > _max_bytes():
        raise InputError(f"The files hold {total:,} bytes; the limit is {_max_bytes():,}.")


def _zip_members(raw: bytes) -> list[_Member]:
    """Regular members read in memory; member count and total size are capped against zip bombs."""
    budget = _max_bytes()
    members: list[_Member] = []
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            for info in zf.infolist():
                name = info.filename.rsplit("/", 1)[-1]
                if info.is_dir() or info.filename.startswith("__MACOSX/") or _hidden(name) or not name:
                    continue
                if len(members) >= MAX_FILES:
                    raise InputError(f"The .zip file holds more than {MAX_FILES:,} files; give one series at a time.")
                with zf.open(info) as member:
                    data = member.read(budget + 1)  # never trust the declared size
                budget -= len(data)
                if budget < 0:
                    raise InputError(f"The .zip file unpacks to more than {_max_bytes():,} bytes, the limit.")
                members.append((name, data))
    except InputError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError) as exc:
        raise InputError("The .zip file is corrupt, encrypted or uses an unsupported compression method.") from exc
    return members


# --- headers and geometry --------------------------------------------------------------------


def _read_headers(members: list[_Member]) -> list[_Slice]:
    """Headers of the DICOM image files; other files are skipped, damaged DICOM files refused."""
    slices: list[_Slice] = []
    for name, content in members:
        head = content[:132] if isinstance(content, bytes) else _head(content)
        magic = head[128:132] == b"DICM"
        if not magic and not name.lower().endswith(_DICOM_SUFFIXES):
            continue
        source = io.BytesIO(content) if isinstance(content, bytes) else str(content)
        try:
            ds = pydicom.dcmread(source, force=not magic, stop_before_pixels=True)
            if "Rows" not in ds:
                continue  # not an image: a report, a DICOMDIR, a presentation state...
            shape = (int(ds.Rows or 0), int(ds.get("Columns") or 0))
            frames, samples = int(ds.get("NumberOfFrames") or 1), int(ds.get("SamplesPerPixel") or 1)
            for keyword in _USED_TAGS:  # pydicom parses on first access: meet damage here
                ds.get(keyword)
            geometry = [_floats(ds.get(k), n) for k, n in
                        (("ImagePositionPatient", 3), ("ImageOrientationPatient", 6), ("PixelSpacing", 2))]
        except Exception as exc:  # pydicom raises InvalidDicomError, EOFError, struct.error, ...
            raise InputError(f"The DICOM file {name} is corrupt or unreadable.") from exc
        if frames > 1 or samples != 1:
            raise InputError(f"The file {name} holds a multi-frame or colour image; "
                             "a series of single-frame grayscale slices is expected.")
        _transfer_syntax(ds)
        slices.append(_Slice(name, content, not magic, ds, shape, *geometry))
    if not slices:
        count = f"{len(members)} file" + ("" if len(members) == 1 else "s")
        raise InputError(f"No DICOM image files were found among the {count} given.")
    return slices


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(132)
    except OSError as exc:
        raise InputError(f"The file {path.name} does not exist or could not be read.") from exc


def _floats(value: object, n: int) -> np.ndarray | None:
    """n finite floats from a DICOM multi-value, or None if absent or malformed."""
    try:
        arr = np.array([float(v) for v in value], float)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return arr if arr.shape == (n,) and np.isfinite(arr).all() else None


def _check_consistent(slices: list[_Slice]) -> None:
    """One series; same size, photometric interpretation, orientation and pixel spacing throughout."""
    series = {str(s.ds.get("SeriesInstanceUID") or "") for s in slices}
    if len(series) > 1:
        raise InputError(f"The files hold {len(series)} series; give one series at a time.")
    if any(s.ipp is None or s.iop is None or s.spacing is None for s in slices):
        raise InputError("The files lack the geometry needed to stack them into a volume "
                         "(ImagePositionPatient, ImageOrientationPatient and PixelSpacing).")
    first = slices[0]
    rows, cols = first.shape
    _check_image_size(cols, rows)
    for s in slices[1:]:
        if s.shape != first.shape:
            raise InputError(f"The slices differ in size ({cols}x{rows} and {s.shape[1]}x{s.shape[0]} pixels); "
                             "all slices of a series must have the same size.")
        if s.ds.get("PhotometricInterpretation") != first.ds.get("PhotometricInterpretation"):
            raise InputError("The slices differ in photometric interpretation; they cannot form one volume.")
        if not np.allclose(s.iop, first.iop, atol=1e-4):
            raise InputError("The slices differ in orientation (ImageOrientationPatient); "
                             "they cannot form one volume.")
        if not np.allclose(s.spacing, first.spacing, rtol=1e-4, atol=1e-6):
            raise InputError("The slices differ in pixel spacing; they cannot form one volume.")


def _geometry(slices: list[_Slice]) -> tuple[list[_Slice], np.ndarray]:
    """Slices sorted along the normal, and the voxel->LPS affine of arr[column, row, slice]."""
    r, c = slices[0].iop[:3], slices[0].iop[3:]
    if min(np.linalg.norm(r), np.linalg.norm(c)) < 0.5 or abs(r @ c) > 0.01 * np.linalg.norm(r) * np.linalg.norm(c):
        raise InputError("The ImageOrientationPatient of the slices is not two perpendicular directions, "
                         "so the slices cannot be oriented.")
    r, c = r / np.linalg.norm(r), c / np.linalg.norm(c)
    normal = np.cross(r, c)
    positions = np.array([s.ipp for s in slices])
    order = np.argsort(positions @ normal, kind="stable")
    slices, positions = [slices[i] for i in order], positions[order]
    if len(slices) > 1:
        step = (positions[-1] - positions[0]) / (len(slices) - 1)
        _check_spacing(positions, normal, step)
    else:
        ds = slices[0].ds
        thickness = _floats([ds.get("SpacingBetweenSlices") or ds.get("SliceThickness") or 1.0], 1)
        step = normal * (abs(thickness[0]) if thickness is not None and thickness[0] else 1.0)
    row_spacing, col_spacing = slices[0].spacing
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2] = r * col_spacing, c * row_spacing, step
    affine[:3, 3] = positions[0]
    return slices, affine


def _check_spacing(positions: np.ndarray, normal: np.ndarray, step: np.ndarray) -> None:
    """Refuse duplicate positions, uneven gaps along the normal and positions off a straight line."""
    distances = positions @ normal
    gaps = np.diff(distances)
    mean = float(step @ normal)
    if gaps.min() < max(1e-3, SPACING_TOLERANCE * mean):
        at = distances[int(np.argmin(gaps))]
        raise InputError(f"Several files have the same slice position ({at:.4g} mm); "
                         "a series must hold one slice per position, without duplicates.")
    if np.abs(gaps - mean).max() > SPACING_TOLERANCE * mean:
        raise InputError(f"The slice spacing is uneven (gaps from {gaps.min():.3g} to {gaps.max():.3g} mm); "
                         "a slice may be missing from the series.")
    residual = positions - positions[0] - np.arange(len(positions))[:, None] * step
    off_line = residual - np.outer(residual @ normal, normal)
    if np.linalg.norm(off_line, axis=1).max() > max(0.01, SPACING_TOLERANCE * float(np.linalg.norm(step))):
        raise InputError("The slice positions do not lie on one straight line, "
                         "so the slices cannot be stacked into a regular volume.")


# --- pixels ----------------------------------------------------------------------------------


def _stack(slices: list[_Slice]) -> np.ndarray:
    """float32 arr[column, row, slice] after each slice's modality LUT (e.g. HU for CT)."""
    rows, cols = slices[0].shape
    volume = np.empty((cols, rows, len(slices)), np.float32)
    for k, s in enumerate(slices):
        source = io.BytesIO(s.content) if isinstance(s.content, bytes) else str(s.content)
        try:
            ds = pydicom.dcmread(source, force=s.force)
        except Exception as exc:
            raise InputError(f"The DICOM file {s.name} is corrupt or unreadable.") from exc
        if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            raise InputError(f"The DICOM file {s.name} has no pixel data.")
        syntax = _transfer_syntax(ds)
        try:
            pixels = apply_modality_lut(ds.pixel_array, ds)
        except Exception as exc:  # decoder plugins raise many types on damaged data
            raise InputError(f"The pixel data of {s.name} (transfer syntax {syntax.name}) could not be decoded; "
                             "the file may be corrupt.") from exc
        if pixels.shape != (rows, cols):
            raise InputError(f"The pixel data of {s.name} does not match its declared size of {cols}x{rows} pixels.")
        with np.errstate(over="ignore"):
            volume[:, :, k] = pixels.T
    return volume if np.isfinite(volume).all() else _finite_float32(volume)
