"""Bad-input corpus: hostile or broken inputs through the package API, the app's HTTP API and the UI.

Every input is generated here at test time. Each case either fails with one plain sentence, the same
on every path (``segment_files``; ``/segment`` through gradio_client; for what the UI loads, the UI's
status line), or, for a valid but unusual input, succeeds with a correct mask: DICE against the
generated object, and the reported DICE equal to the returned mask's. After the corpus the app still
answers a normal request. Limits and file safety (upload size, served files, temporary files) follow.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import os
import re
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import gradio as gr
import httpx
import nibabel as nib
import numpy as np
import pydicom
import pytest
import tifffile
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML, CTImageStorage, ExplicitVRLittleEndian, generate_uid

from conftest import bomb_png, served, tiny_spec
from medsam import imaging, load_model, models
from medsam import session as session_module
from medsam.decoding import MAX_POINTS
from medsam.errors import CheckpointError, InputError, MedsamError, ModelUnavailableError
from medsam.readers import PILLOW_LIMIT
from medsam.service import MAX_PROMPT_CHARS, segment_files
from medsam.session import MODES
from medsam.settings import settings
from medsam.ui import CACHE_CLEANUP, build
from medsam.ui.segment_tab import SegmentTab

UPLOAD_MB = 4  # the test app's upload limit (MEDSAM_MAX_UPLOAD_MB); every corpus file is smaller
MARKER = "executed.txt"  # what the pickled code in a checkpoint would write, were it ever run

# --- generated inputs ------------------------------------------------------------------------------

H, W = 96, 128  # pictures are not square, so a transposed result would show


def _disc(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


OBJECT = _disc(H, W, 48, 64, 24)
N, RADIUS = 48, 14
# A ball centred between voxels: every flip and axis order of the volume shows the same middle slice,
# the disc below (the middle slice, index N // 2, is half a voxel from the centre).
BALL = np.sum((np.indices((N, N, N)) - (N - 1) / 2) ** 2, axis=0) <= RADIUS**2
DISC = _disc(N, N, (N - 1) / 2, (N - 1) / 2, np.sqrt(RADIUS**2 - 0.25))
# Axes permuted and flipped: voxel i runs to -z, j to -x, k to +y (neither RAS nor LPS).
ODD_AFFINE = np.array([[0, -1.5, 0, 10], [0, 0, 2.0, -5], [-3.0, 0, 0, 7], [0, 0, 0, 1]])


def _box(mask: np.ndarray, pad: int = 2) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()) - pad, int(ys.min()) - pad, int(xs.max()) + pad, int(ys.max()) + pad]


def _noisy(mask: np.ndarray, low: float, high: float, noise: float, seed: int = 0) -> np.ndarray:
    """``high`` inside the mask, ``low`` outside, plus Gaussian noise (float64)."""
    rng = np.random.default_rng(seed)
    return np.where(mask, high, low) + rng.normal(0, noise, mask.shape)


def _gray() -> np.ndarray:
    return np.clip(_noisy(OBJECT, 50, 210, 8), 0, 255).astype(np.uint8)


def _save(image: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _png(arr: np.ndarray) -> bytes:
    return _save(Image.fromarray(arr), "PNG")


def _rgba() -> bytes:
    rgb = np.stack([_gray(), (_gray() * 0.4).astype(np.uint8), np.full((H, W), 60, np.uint8)], axis=-1)
    alpha = np.full((H, W, 1), 255, np.uint8)
    alpha[:, :8] = 0  # a transparent strip: composited over black
    return _png(np.concatenate([rgb, alpha], axis=-1))


def _palette() -> bytes:
    rgb = np.where(OBJECT[..., None], np.uint8([200, 90, 60]), np.uint8([30, 40, 50])).astype(np.uint8)
    return _save(Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=4), "PNG")


def _tiff16() -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.clip(_noisy(OBJECT, 9000, 41000, 800), 0, 65535).astype(np.uint16))
    return buf.getvalue()


def _dicom(pixels: np.ndarray | None = None, **tags: Any) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    if pixels is not None:
        ds.set_pixel_data(pixels, "MONOCHROME2", 16)
    for key, value in tags.items():
        setattr(ds, key, value)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _dicom_mpeg2() -> bytes:
    ds = pydicom.dcmread(io.BytesIO(_dicom(np.zeros((16, 16), np.uint16))))
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 60])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _dicom_huge() -> bytes:
    ds = pydicom.dcmread(io.BytesIO(_dicom(np.zeros((16, 16), np.uint16))))
    ds.Rows = ds.Columns = 60000  # the header claims 3.6 gigapixels; the data holds 256 pixels
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def _dicom_bad_vr() -> bytes:
    """A DICOM whose WindowCenter element has a VR that is no VR: pydicom fails only when it is read."""
    raw = _dicom(np.zeros((16, 16), np.uint16), WindowCenter=40, WindowWidth=400)
    tag = b"\x28\x00\x50\x10DS"
    assert raw.count(tag) == 1
    return raw.replace(tag, b"\x28\x00\x50\x10\x44\xd3")


def _nifti(data: np.ndarray, affine: np.ndarray = np.eye(4)) -> bytes:
    return nib.Nifti1Image(data, affine).to_bytes()


def _ball(dtype: type = np.float32) -> np.ndarray:
    return _noisy(BALL, 0, 800, 20).astype(dtype)


def _patched(raw: bytes, offset: int, fmt: str, *values: Any) -> bytes:
    """NIfTI header bytes with ``values`` written at ``offset`` (fields nibabel would not let us set)."""
    out = bytearray(raw)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def _nan_inf() -> bytes:
    vol = _ball()
    vol[:, :, 0] = np.nan  # a whole slice, and single voxels on the slice that is shown
    vol[0, 0, N // 2], vol[-1, -1, N // 2], vol[0, -1, N // 2] = np.nan, np.inf, -np.inf
    return _nifti(vol)


def _int32_extremes() -> bytes:
    vol = _ball(np.int32)
    vol[0, 0, N // 2], vol[-1, -1, N // 2] = np.iinfo(np.int32).min, np.iinfo(np.int32).max
    return _nifti(vol)


def _slope_overflow() -> bytes:
    vol = (BALL * 100).astype(np.int16)
    vol[0, 0, N // 2] = 32000  # times the slope: beyond float32, becomes the largest finite value
    return _patched(_nifti(vol), 112, "<2f", 1e36, 0.0)  # scl_slope, scl_inter


def _degenerate_affine() -> bytes:
    raw = _patched(_nifti(_ball()), 252, "<2h", 0, 1)  # qform_code 0, sform_code 1 ...
    return _patched(raw, 280, "<12f", *[0.0] * 12)  # ... with an all-zero sform


def _short_header() -> bytes:
    return _nifti(_ball())[:100]


def _huge_header() -> bytes:
    return _patched(_nifti(np.zeros((8, 8, 8), np.uint8)), 40, "<8h", 3, 4000, 4000, 4000, 1, 1, 1, 1)[:400]


def _zero_dim() -> bytes:
    return _patched(_nifti(np.zeros((8, 8, 8), np.uint8)), 40, "<8h", 3, 0, 8, 8, 1, 1, 1, 1)


def _cut(data: bytes) -> bytes:
    return data[: len(data) // 2]


# --- cases ------------------------------------------------------------------------------------------


@dataclass
class Request:
    """One /segment request: image file, JSON prompts, model and optional ground-truth mask."""

    image: Path
    prompts: str
    model: str = "litemedsam"
    gt: Path | None = None


Make = Callable[[Path, pytest.MonkeyPatch], Request]


@dataclass(frozen=True)
class Case:
    """A corpus entry: how to make the request, and the plain sentence expected (None: it must succeed)."""

    id: str
    make: Make
    error: str | None = None  # regular expression the whole message must match
    kind: type[MedsamError] = InputError  # what segment_files raises
    ui: str | None = None  # how the UI meets it: "upload", "gt" or "model"
    load_kind: type[MedsamError] | None = None  # model cases: what load_model raises, same message


def _write(folder: Path, name: str, data: bytes) -> Path:
    (folder / name).write_bytes(data)
    return folder / name


def _mask_file(folder: Path, mask: np.ndarray) -> Path:
    return _write(folder, "gt_mask.png", _png((mask * 255).astype(np.uint8)))


def _file(name: str, data: Callable[[], bytes]) -> Make:
    """An image file that must be refused whatever the prompt."""
    return lambda tmp, mp: Request(_write(tmp, name, data()), json.dumps({"box": [1, 1, 6, 6]}))


def _ok(name: str, data: Callable[[], bytes], gt: np.ndarray) -> Make:
    """A valid but unusual image file, prompted with a box around its object, scored against it."""
    return lambda tmp, mp: Request(_write(tmp, name, data()), json.dumps({"box": _box(gt)}), gt=_mask_file(tmp, gt))


def _picture(tmp: Path) -> Path:
    return _write(tmp, "object.png", _png(_gray()))


def _prompts(prompts: str | dict, gt: bool = False) -> Make:
    """The plain gray picture with these prompts (a dict is sent as JSON)."""
    text = prompts if isinstance(prompts, str) else json.dumps(prompts)
    return lambda tmp, mp: Request(_picture(tmp), text, gt=_mask_file(tmp, OBJECT) if gt else None)


def _gt(name: str, data: Callable[[], bytes]) -> Make:
    """The plain picture, a good box and a bad ground-truth file."""
    return lambda tmp, mp: Request(_picture(tmp), json.dumps({"box": _box(OBJECT)}), gt=_write(tmp, name, data()))


class _Evil:
    """Pickles to a call of Path.write_text: loading it with plain pickle would create the marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.write_text, (self.marker, "pwned"))


def _checkpoint(name: str, content: Callable[[Path], Any] | None = None, sha256: str | None = None) -> Make:
    """Register a tiny random SAM whose checkpoint file holds ``content`` (default: real weights)."""
    def make(tmp: Path, mp: pytest.MonkeyPatch) -> Request:
        folder = tmp / "checkpoints"
        folder.mkdir()
        mp.setenv("MEDSAM_CHECKPOINTS", str(folder))
        mp.delenv("MEDSAM_DOWNLOAD", raising=False)
        mp.delenv("SPACE_ID", raising=False)
        if content is not None:
            torch.save(content(tmp), folder / f"{name}.pth")
        mp.setitem(models.REGISTRY, name, tiny_spec(folder, name, sha256))
        return Request(_picture(tmp), json.dumps({"box": _box(OBJECT)}), model=name)
    return make


def _missing_checkpoint(tmp: Path, mp: pytest.MonkeyPatch) -> Request:
    mp.setenv("MEDSAM_CHECKPOINTS", str(tmp / "empty"))
    mp.delenv("MEDSAM_DOWNLOAD", raising=False)
    mp.delenv("SPACE_ID", raising=False)
    return Request(_picture(tmp), json.dumps({"box": _box(OBJECT)}), model="sam_vit_b")


def _unknown_model(tmp: Path, mp: pytest.MonkeyPatch) -> Request:
    return Request(_picture(tmp), json.dumps({"box": _box(OBJECT)}), model="no_such_model")


LIMIT = f"{settings().max_pixels:,}"
BAD_JSON = re.escape('Prompts must be JSON like {"points": [[x, y]], "labels": [1], "box": [x0, y0, x1, y1]}.')
NOT_NUMBERS = re.escape("Prompts must be numbers: points as [[x, y], ...], labels as [1, 0, ...], a box as "
                        "[x0, y0, x1, y1] and a mask input (Python API only) as the 256x256 low-res logits "
                        "of an earlier prediction.")
PICTURE = f"{W}x{H}"

CASES = [
    # image files that cannot be used
    Case("zero-byte", _file("empty.png", lambda: b""), r"The file is empty\.", ui="upload"),
    Case("truncated-png", _file("cut.png", lambda: _cut(_png(_gray()))), r"The PNG file is truncated or corrupt\.",
         ui="upload"),
    Case("truncated-jpeg", _file("cut.jpg", lambda: _cut(_save(Image.fromarray(_gray()), "JPEG"))),
         r"The JPEG file is truncated or corrupt\.", ui="upload"),
    Case("truncated-tiff", _file("cut.tif", lambda: _cut(_tiff16())), r"The TIFF file is truncated or corrupt\.",
         ui="upload"),
    Case("text-named-png", _file("notes.png", lambda: b"this is not an image\n"),
         r"The file is named \.png but its content is not a PNG image\.", ui="upload"),
    Case("unknown-type", _file("scan.xyz", lambda: bytes(range(256)) * 4),
         r"Unrecognised file type: expected PNG, JPEG, BMP, TIFF, DICOM or NIfTI\.", ui="upload"),
    Case("one-pixel", _file("dot.png", lambda: _png(np.zeros((1, 1), np.uint8))),
         r"The image is 1x1 pixels; it must be at least 8x8\.", ui="upload"),
    Case("png-bomb-30000", _file("bomb.png", bomb_png),
         rf"The image is too large: its header declares more than "
         rf"{2 * max(settings().max_pixels, PILLOW_LIMIT):,} pixels and the "
         rf"limit is {LIMIT}\.", ui="upload"),
    Case("sliver-6000x8", _file("sliver.png", lambda: _png(np.zeros((8, 6000), np.uint8))),
         r"The image is 6000x8 pixels; its longer side may be at most 100 times its shorter side\.", ui="upload"),
    Case("dicom-huge-header", _file("huge.dcm", _dicom_huge),
         rf"The image is 60000x60000 pixels \(3,600,000,000\); the limit is {LIMIT} pixels\.", ui="upload"),
    Case("dicom-no-pixel-data", _file("empty.dcm", _dicom), r"The DICOM file has no pixel data\.", ui="upload"),
    Case("dicom-mpeg2-syntax", _file("video.dcm", _dicom_mpeg2),
         re.escape(f"The DICOM transfer syntax {MPEG2MPML.name} is not supported: no decoder is installed."),
         ui="upload"),
    Case("dicom-bad-vr", _file("vr.dcm", _dicom_bad_vr), r"The DICOM file is corrupt or unreadable\.", ui="upload"),
    Case("dicom-truncated", _file("cut.dcm", lambda: _cut(_dicom(np.zeros((64, 64), np.uint16)))),
         r"The DICOM pixel data \(transfer syntax Explicit VR Little Endian\) could not be decoded; "
         r"the file may be corrupt\.", ui="upload"),
    Case("nifti-gz-not-gzip", _file("scan.nii.gz", lambda: b"plain text, not gzip\n" * 40),
         r"The file is named \.nii\.gz but is not a valid gzip file\.", ui="upload"),
    Case("nifti-gzip-corrupt", _file("scan.nii.gz", lambda: b"\x1f\x8b\x08\x00" + b"garbage" * 60),
         r"The gzip file is truncated or corrupt\.", ui="upload"),
    Case("nifti-gzip-of-text", _file("scan.nii.gz", lambda: gzip.compress(b"hello world\n" * 100)),
         r"The file is not a valid NIfTI-1 image\.", ui="upload"),
    Case("nifti-5d", _file("five.nii", lambda: _nifti(np.zeros((8, 8, 8, 2, 2), np.uint8))),
         r"The NIfTI image has 5 dimensions; 2, 3 or 4 are supported\.", ui="upload"),
    Case("nifti-huge-header", _file("huge.nii", _huge_header),
         rf"The volume is 4000x4000x4000 voxels \(64,000,000,000\); the limit is {LIMIT} pixels per slice "
         rf"and {imaging.VOLUME_FACTOR * settings().max_pixels:,} voxels in all\.", ui="upload"),
    Case("nifti-truncated-data", _file("cut.nii", lambda: _nifti(_ball())[:5000]), r"The NIfTI file is truncated\.",
         ui="upload"),
    Case("nifti-short-header", _file("stub.nii", _short_header), r"The NIfTI file is truncated\.", ui="upload"),
    Case("nifti-zero-dimension", _file("flat.nii", _zero_dim), r"The volume has no voxels\.", ui="upload"),
    Case("nifti-degenerate-affine", _file("zero_affine.nii", _degenerate_affine),
         r"The NIfTI affine is degenerate \(its voxel axes do not span 3D space\), so the image cannot be "
         r"oriented\.", ui="upload"),
    # valid but unusual files: they load and segment correctly
    Case("png-named-jpg", _ok("object.jpg", lambda: _png(_gray()), OBJECT), ui="upload"),
    Case("nifti-named-png", _ok("volume.png", lambda: _nifti(_ball()), DISC), ui="upload"),
    Case("tiff-16-bit", _ok("object16.tif", _tiff16, OBJECT), ui="upload"),
    Case("png-rgba", _ok("rgba.png", _rgba, OBJECT), ui="upload"),
    Case("png-palette", _ok("palette.png", _palette, OBJECT), ui="upload"),
    Case("nifti-nan-inf", _ok("nan.nii", _nan_inf, DISC), ui="upload"),
    Case("nifti-4d", _ok("series.nii.gz", lambda: gzip.compress(_nifti(np.stack(
        [_ball(), _noisy(np.zeros((N, N, N), bool), 0, 0, 300).astype(np.float32)], axis=-1))), DISC), ui="upload"),
    Case("nifti-2d", _ok("plane.nii", lambda: _nifti(_noisy(DISC, 0, 800, 20).astype(np.float32)), DISC),
         ui="upload"),
    Case("nifti-int32-extremes", _ok("int32.nii", _int32_extremes, DISC), ui="upload"),
    Case("nifti-slope-overflow", _ok("slope.nii", _slope_overflow, DISC), ui="upload"),
    Case("nifti-non-canonical-affine", _ok("odd.nii.gz", lambda: gzip.compress(_nifti(_ball(), ODD_AFFINE)), DISC),
         ui="upload"),
    # ground-truth masks
    Case("gt-wrong-size", _gt("small.png", lambda: _png(np.zeros((10, 12), np.uint8))),
         rf"The mask is 12x10 pixels but the image is {PICTURE}\.", ui="gt"),
    Case("gt-non-binary", _gt("labels.png", lambda: _png((OBJECT * 2 + (np.arange(W) > 100)).astype(np.uint8))),
         r"The mask has 3 distinct values; a binary mask \(0 and one foreground value\) is expected\.", ui="gt"),
    Case("gt-not-an-image", _gt("mask.png", lambda: b"0,1,0\n1,1,0\n"),
         r"The file is named \.png but its content is not a PNG image\.", ui="gt"),
    Case("gt-volume-for-picture", _gt("mask.nii.gz", lambda: gzip.compress(_nifti(BALL.astype(np.uint8)))),
         r"The mask must be a 2D image, not a volume\.", ui="gt"),
    # prompts
    Case("box-outside", _prompts({"box": [500, 500, 600, 600]}),
         rf"The box \(500, 500, 600, 600\) has no area inside the {PICTURE} image\."),
    Case("box-inverted", _prompts({"box": [80, 70, 40, 20]}),
         r"The box \(80, 70, 40, 20\) is inverted; give it as \[x0, y0, x1, y1\] with x0 < x1 and y0 < y1\."),
    Case("box-zero-area", _prompts({"box": [40, 20, 40, 70]}),
         rf"The box \(40, 20, 40, 70\) has no area inside the {PICTURE} image\."),
    Case("box-partly-outside", _prompts({"box": [38, 22, 90, 200]}, gt=True)),  # clipped to the image
    Case("point-outside", _prompts({"points": [[-3, 4]], "labels": [1]}),
         rf"The point \(-3, 4\) is outside the {PICTURE} image\."),
    Case("points-10000", _prompts({"points": [[5, 5]] * 10000, "labels": [1] * 10000}),
         rf"10000 points were given; at most {MAX_POINTS} are allowed per prompt\."),
    Case("labels-mismatch", _prompts({"points": [[5, 5], [9, 9]], "labels": [1]}),
         r"2 points but 1 label was given; give one label per point\."),
    Case("label-not-0-or-1", _prompts({"points": [[5, 5]], "labels": [2]}),
         r"Point labels must be 1 \(object\) or 0 \(background\)\."),
    Case("box-nan", _prompts('{"box": [NaN, 1, 50, 50]}'), r"Prompt coordinates must be finite numbers\."),
    Case("box-400-digit-integer", _prompts('{"box": [0, 0, 1' + "0" * 400 + ", 50]}"),
         r"Prompt coordinates must be finite numbers\."),
    Case("two-boxes", _prompts({"box": [[1, 1, 9, 9], [20, 20, 40, 40]]}), NOT_NUMBERS),
    Case("prompts-not-json", _prompts("box: 1 2 3 4"), BAD_JSON),
    Case("prompts-nested-100000-deep", _prompts("[" * 100_000 + "]" * 100_000), BAD_JSON),
    Case("prompts-over-1mb", _prompts('{"box": [1, 1, 9, 9]' + " " * MAX_PROMPT_CHARS + "}"),
         rf"The prompts are {MAX_PROMPT_CHARS + 21:,} characters long; the limit is {MAX_PROMPT_CHARS:,}\."),
    Case("no-prompt", _prompts({}), r"Give at least one point or a box\."),
    # models and checkpoints
    Case("unknown-model", _unknown_model, r"Unknown model 'no_such_model'\. Known models: litemedsam, .*\.",
         kind=MedsamError, load_kind=MedsamError),
    Case("checkpoint-missing", _missing_checkpoint,
         r"The checkpoint sam_vit_b_01ec64\.pth \(\d+ MB\) is not in \$MEDSAM_CHECKPOINTS\. "
         r"Download it from https://\S+ "
         r"and put it in that folder .*\.", ui="model", load_kind=ModelUnavailableError),
    Case("checkpoint-wrong-sha256", _checkpoint("tiny_sha", sha256="0" * 64),
         r"The checkpoint tiny_sha\.pth does not have the expected sha256 of tiny_sha\.pth; it is corrupt or a "
         r"different file\. Delete it and fetch it again\.", ui="model", load_kind=CheckpointError),
    Case("checkpoint-pickle-with-code", _checkpoint("tiny_evil", lambda tmp: {"model": _Evil(tmp / MARKER)}),
         r"The checkpoint tiny_evil\.pth is not a plain PyTorch state dict and was refused \(it may contain code "
         r"or be corrupt\)\.", ui="model", load_kind=CheckpointError),
    Case("checkpoint-not-a-state-dict", _checkpoint("tiny_list", lambda tmp: ["not", "weights"]),
         r"The checkpoint tiny_list\.pth does not hold a dictionary of tensors\.", ui="model",
         load_kind=CheckpointError),
]


# --- the app, in this process, on a free port --------------------------------------------------------


@pytest.fixture(scope="module")
def app() -> tuple[gr.Blocks, str]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDSAM_MAX_UPLOAD_MB", str(UPLOAD_MB))
        demo = build(None)
        with served(demo) as url:  # the upload limit stays set while the module's tests use the app
            yield demo, url


@pytest.fixture(scope="module")
def client(app: tuple[gr.Blocks, str]) -> Client:
    return Client(app[1], verbose=False)


def _handler(demo: gr.Blocks, name: str) -> Callable:
    """A Segment-tab event handler by name (the plain one, not an Undo/Clear partial), returning
    (session, status line) from its {component: value} updates."""
    fns = [f.fn for f in demo.fns.values() if not isinstance(f.fn, functools.partial)
           and getattr(f.fn, "__name__", "") == name
           and isinstance(getattr(getattr(f.fn, "__wrapped__", None), "__self__", None), SegmentTab)]
    assert fns, name
    fn = fns[-1]
    tab = fn.__wrapped__.__self__

    def call(*args: object) -> tuple:
        out = fn(*args)
        return out.get(tab.session), out[tab.status]
    return call


def _segment(client: Client, req: Request) -> tuple[str, dict]:
    return client.predict(handle_file(str(req.image)), req.prompts, req.model,
                          handle_file(str(req.gt)) if req.gt else None, api_name="/segment")


def _assert_plain(message: str) -> None:
    """One sentence for a person: no traceback, no exception name, no 'Error' boilerplate."""
    assert message and "\n" not in message and "Traceback" not in message, message
    assert not message[0].islower() and message.endswith("."), message
    assert not re.match(r"(\w+Error|Error)\b", message), message


def _assert_correct(png: str | Path, info: dict, gt_path: Path) -> float:
    """The mask has the image's size, is binary, overlaps the object and the reported DICE is its own."""
    gt = np.asarray(Image.open(gt_path)) > 0
    mask = np.asarray(Image.open(png))
    assert mask.shape == gt.shape and set(np.unique(mask)) <= {0, 255}
    assert info["image_size"] == [gt.shape[1], gt.shape[0]]
    overlap = 2 * np.logical_and(mask > 0, gt).sum() / ((mask > 0).sum() + gt.sum())
    assert info["dice"] == pytest.approx(overlap, abs=1e-4)
    assert info["dice"] > 0.85, info
    return info["dice"]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@pytest.mark.filterwarnings("ignore::UserWarning")  # gr.Warning outside a request only warns
def test_bad_input(case: Case, app: tuple[gr.Blocks, str], client: Client, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    req = case.make(tmp_path, monkeypatch)
    demo = app[0]
    # 1. the package API
    if case.error is None:
        png, info = segment_files(req.image, req.prompts, req.model, req.gt)
        dice = _assert_correct(png, info, req.gt)
    else:
        with pytest.raises(case.kind) as err:
            segment_files(req.image, req.prompts, req.model, req.gt)
        message = str(err.value)
        assert re.fullmatch(case.error, message), message
        _assert_plain(message)
        if case.load_kind is not None:
            with pytest.raises(case.load_kind) as err:
                load_model(req.model)
            assert str(err.value) == message
    # 2. the app's HTTP API: the same answer
    if case.error is None:
        png, info = _segment(client, req)
        assert _assert_correct(png, info, req.gt) == pytest.approx(dice, abs=1e-3)
    else:
        with pytest.raises(AppError) as err:
            _segment(client, req)
        assert str(err.value) == message
    # 3. the UI: a visible message in the status line (or the image shown)
    model_in = ("litemedsam", False, None)
    if case.ui == "upload":
        out = _handler(demo, "on_upload")([str(req.image)], *model_in)
        if case.error is None:
            assert out[0].rgb.shape[:2] == np.asarray(Image.open(req.gt)).shape and out[-1].startswith("Add a prompt")
        else:
            assert out[-1] == f"**Error:** {message}"
    elif case.ui == "gt":
        session = _handler(demo, "on_upload")([str(req.image)], *model_in)[0]
        out = _handler(demo, "on_gt")(session, str(req.gt), *model_in)
        assert out[-1] == f"**Error:** {message}"
    elif case.ui == "model":
        session = _handler(demo, "on_upload")([str(req.image)], *model_in)[0]
        session.box = tuple(_box(OBJECT))
        out = _handler(demo, "on_edit")(session, req.model, False, None)
        assert f"**{models.REGISTRY[req.model].title}:** {message}" in out[-1].split("  \n")
    assert not (tmp_path / MARKER).exists(), "the pickled code in a checkpoint was executed"


def test_the_evil_checkpoint_would_run_its_code_if_unpickled(tmp_path: Path) -> None:
    """The marker check above means something: plain unpickling of that file does run the code."""
    torch.save({"model": _Evil(tmp_path / MARKER)}, tmp_path / "evil.pth")
    torch.load(tmp_path / "evil.pth", weights_only=False)
    assert (tmp_path / MARKER).read_text() == "pwned"


def test_corpus_covers_the_issue() -> None:
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)
    assert sum(c.error is None for c in CASES) >= 10, "valid but unusual inputs must be shown to work"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_ui_refuses_clicks_outside_and_beyond_the_point_cap(app: tuple[gr.Blocks, str], tmp_path: Path) -> None:
    demo = app[0]
    session = _handler(demo, "on_upload")([str(_picture(tmp_path))], "litemedsam", False, None)[0]
    on_click = _handler(demo, "on_click")
    out = on_click(session, MODES[0], "litemedsam", False, None, gr.SelectData(None, {"index": [500, 5], "value": 0}))
    assert out[-1] == f"**Error:** The click (500, 5) is outside the {PICTURE} image."
    for i in range(MAX_POINTS):
        session.click(10 + i % 100, 10, MODES[0])
    out = on_click(session, MODES[1], "litemedsam", False, None, gr.SelectData(None, {"index": [5, 5], "value": 0}))
    assert out[-1] == (f"**Error:** The prompt already has {MAX_POINTS} points, the most allowed; "
                       f"undo or clear some first.")
    assert len(session.points) == MAX_POINTS
    session.click(5, 5, MODES[2])  # a box corner is still allowed
    assert session.corner == (5, 5)


def test_app_still_answers_after_the_corpus(client: Client, phantom_files) -> None:
    image, mask, box = phantom_files
    png, info = client.predict(handle_file(str(image)), json.dumps({"box": box}), "litemedsam",
                               handle_file(str(mask)), api_name="/segment")
    assert _assert_correct(png, info, mask) > 0.9


# --- limits and file safety --------------------------------------------------------------------------


def test_upload_over_the_size_limit_is_refused(app: tuple[gr.Blocks, str], client: Client, tmp_path: Path) -> None:
    limit = UPLOAD_MB * 2**20
    big = _write(tmp_path, "big.png", b"\0" * (limit + 1))
    with pytest.raises(ValueError, match=f"exceeds the maximum file size of {limit} bytes"):
        client.predict(handle_file(str(big)), "{}", "litemedsam", None, api_name="/segment")
    # the server refuses it too, whatever the client checks
    response = httpx.post(app[1] + "gradio_api/upload", files={"files": ("big.png", big.read_bytes())})
    assert response.status_code == 413
    assert f"File size exceeded maximum allowed size of {limit} bytes." in response.text


def test_only_files_the_app_created_are_served(app: tuple[gr.Blocks, str], tmp_path: Path) -> None:
    url = app[1]
    image = _picture(tmp_path)
    mask, _ = Client(url, verbose=False, download_files=False).predict(
        handle_file(str(image)), json.dumps({"box": _box(OBJECT)}), "litemedsam", None, api_name="/segment")
    assert httpx.get(mask["url"]).status_code == 200  # the mask is served from Gradio's cache...
    assert not Path(mask["path"]).is_relative_to(session_module._EXPORT_DIR)
    export = max(session_module._EXPORT_DIR.rglob("*_mask.png"), key=lambda p: p.stat().st_mtime)
    secret = _write(tmp_path, "secret.txt", b"do not serve")
    # ... but not its working copy, nor the repository, nor anything else on the machine
    for path in (export, Path("README.md").resolve(), Path(__file__).resolve(), secret, "/etc/passwd",
                 "../../../../etc/passwd", image):
        response = httpx.get(f"{url}gradio_api/file={quote(str(path), safe='')}")  # no client-side ".." folding
        assert response.status_code == 403, path


def test_a_server_path_in_a_request_is_not_read(app: tuple[gr.Blocks, str]) -> None:
    """A hand-made request naming a file on the server instead of uploading one gets nothing back."""
    readme = Path("README.md").resolve()
    data = [{"path": str(readme), "meta": {"_type": "gradio.FileData"}}, '{"box": [1, 1, 6, 6]}', "litemedsam", None]
    event = httpx.post(app[1] + "gradio_api/call/segment", json={"data": data}).json()["event_id"]
    answer = httpx.get(f"{app[1]}gradio_api/call/segment/{event}", timeout=60).text
    assert "event: error" in answer and "Segment Anything" not in answer


def test_temporary_files_are_bounded(app: tuple[gr.Blocks, str], tmp_path: Path) -> None:
    old = Path(tempfile.mkdtemp(dir=session_module._EXPORT_DIR))
    _write(old, "old_mask.png", b"x")
    past = time.time() - session_module.EXPORT_TTL_S - 1
    os.utime(old, (past, past))
    png, _ = segment_files(_picture(tmp_path), {"box": _box(OBJECT)})
    assert not old.exists() and png.is_file() and png.is_relative_to(session_module._EXPORT_DIR)
    assert app[0].delete_cache == CACHE_CLEANUP  # Gradio deletes old uploads and served copies


# --- mutated files: whatever the damage, a plain InputError --------------------------------------------


def _seeds() -> dict[str, bytes]:
    return {"m.png": _png(_gray()), "m.jpg": _save(Image.fromarray(_gray()), "JPEG"), "m.tif": _tiff16(),
            "m.gif": _save(Image.fromarray(_gray()), "GIF"), "r.png": _rgba(), "p.png": _palette(),
            "m.dcm": _dicom(_gray().astype(np.uint16), RescaleSlope=2, RescaleIntercept=-1024, WindowCenter=40,
                            WindowWidth=400),
            "m.nii": _nifti(_ball()[:16, :12, :10], ODD_AFFINE), "m.nii.gz": gzip.compress(_nifti(_ball()[:16]))}


PATCHES = (b"\xff\xff\xff\xff", b"\0\0\0\0", b"\x7f\xff\xff\xff", b"\x80\0\0\0")


@pytest.mark.parametrize("name", list(_seeds()))
def test_mutated_files_fail_plainly(name: str) -> None:
    seed = _seeds()[name]
    rng = np.random.default_rng(sum(name.encode()))
    refused = 0
    for _ in range(150):
        data = bytearray(seed)
        for pos in rng.integers(0, len(data), rng.integers(1, 9)):
            data[pos:pos + 4] = PATCHES[rng.integers(len(PATCHES))] if rng.random() < 0.3 else bytes([pos % 256])
        if rng.random() < 0.1:
            data = data[:rng.integers(0, len(data))]
        try:
            scan = imaging.load_scan(bytes(data), name)
            imaging.to_rgb(imaging.apply_window(scan.slice(), scan.default_window))
        except MedsamError as exc:
            _assert_plain(str(exc))
            refused += 1
    assert refused > 0
