"""Tests for medsam.imaging: every input is generated here, nothing is read from the repository."""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import tifffile
from PIL import Image
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML, CTImageStorage, ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

from conftest import bomb_png
from medsam import scan as scan_module
from medsam.errors import InputError
from medsam.imaging import (
    WINDOW_PRESETS,
    Scan,
    apply_window,
    load_mask,
    load_rgb,
    load_scan,
    save_mask_nifti,
    save_mask_png,
    to_rgb,
)
from medsam.settings import ConfigError

RNG = np.random.default_rng(0)


def _save(im: Image.Image, path: Path, **kwargs) -> Path:
    im.save(path, **kwargs)
    return path


def _gradient(h: int = 24, w: int = 32) -> np.ndarray:
    return (np.arange(h * w).reshape(h, w) % 251).astype(np.uint8)


# --- 2D pictures ---------------------------------------------------------------------------------


def test_png_gray(tmp_path):
    arr = _gradient()
    scan = load_scan(_save(Image.fromarray(arr), tmp_path / "g.png"))
    assert scan.kind == "image" and not scan.rgb and not scan.is_volume
    assert scan.data.dtype == np.float32 and scan.data.shape == (24, 32)
    np.testing.assert_array_equal(scan.data, arr)
    assert scan.default_window == "None (as stored)"
    assert scan.slice() is scan.data and scan.n_slices(2) == 1


def test_png_rgb_and_equal_channels_become_gray(tmp_path):
    arr = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    scan = load_scan(_save(Image.fromarray(arr), tmp_path / "c.png"))
    assert scan.rgb and scan.data.shape == (20, 30, 3) and not scan.is_volume
    np.testing.assert_array_equal(scan.data, arr)
    gray = np.repeat(_gradient()[..., None], 3, axis=2)
    scan = load_scan(_save(Image.fromarray(gray), tmp_path / "g.png"))
    assert not scan.rgb and scan.data.shape == (24, 32)


def test_png_rgba_composited_over_black(tmp_path):
    arr = np.zeros((10, 10, 4), np.uint8)
    arr[...] = (100, 200, 50, 255)
    arr[0, 0] = (100, 200, 50, 0)  # transparent -> black
    arr[0, 1] = (100, 200, 50, 51)  # 20 % opaque
    scan = load_scan(_save(Image.fromarray(arr, "RGBA"), tmp_path / "a.png"))
    assert scan.rgb and scan.data.shape == (10, 10, 3)
    np.testing.assert_allclose(scan.data[5, 5], (100, 200, 50))
    np.testing.assert_allclose(scan.data[0, 0], (0, 0, 0))
    np.testing.assert_allclose(scan.data[0, 1], (20, 40, 10), atol=1e-4)


def test_png_la_palette_and_bilevel(tmp_path):
    la = Image.fromarray(np.dstack([_gradient(), np.full((24, 32), 255, np.uint8)]), "LA")
    np.testing.assert_allclose(load_scan(_save(la, tmp_path / "la.png")).data, _gradient())
    pal = Image.fromarray(_gradient()).convert("RGB").quantize(8)
    scan = load_scan(_save(pal, tmp_path / "p.png"))
    assert scan.data.shape[:2] == (24, 32) and scan.default_window == "None (as stored)"
    bits = Image.fromarray(_gradient() > 100).convert("1")
    scan = load_scan(_save(bits, tmp_path / "b.png"))
    assert set(np.unique(scan.data)) == {0.0, 255.0}


def test_png_16_bit(tmp_path):
    arr = (np.arange(24 * 32).reshape(24, 32) * 80).astype(np.uint16)
    im = Image.fromarray(arr)
    assert im.mode.startswith("I;16")
    scan = load_scan(_save(im, tmp_path / "w.png"))
    np.testing.assert_array_equal(scan.data, arr)
    assert scan.default_window == "MR percentile 0.5-99.5"


def test_jpeg_bmp_gif_cmyk(tmp_path):
    arr = _gradient()
    jpg = load_scan(_save(Image.fromarray(arr), tmp_path / "g.jpg", quality=95))
    assert jpg.data.shape == (24, 32) and np.abs(jpg.data - arr).max() < 20
    rgb = RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    np.testing.assert_array_equal(load_scan(_save(Image.fromarray(rgb), tmp_path / "c.bmp")).data, rgb)
    gif = load_scan(_save(Image.fromarray(arr), tmp_path / "g.gif"))
    assert gif.data.shape == (24, 32)
    cmyk = load_scan(_save(Image.new("CMYK", (12, 10), (0, 255, 255, 0)), tmp_path / "k.jpg"))
    assert cmyk.rgb and cmyk.data.shape == (10, 12, 3) and cmyk.data[..., 0].mean() > 200


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_tiff_via_tifffile(tmp_path, dtype):
    arr = (np.arange(24 * 32).reshape(24, 32) % 200).astype(dtype)
    tifffile.imwrite(tmp_path / "t.tif", arr)
    scan = load_scan(tmp_path / "t.tif")
    np.testing.assert_array_equal(scan.data, arr.astype(np.float32))
    expected = "None (as stored)" if dtype == np.uint8 else "MR percentile 0.5-99.5"
    assert scan.default_window == expected


def test_tiff_rgb_planar_multipage_and_lzw(tmp_path):
    rgb = RNG.integers(0, 256, (3, 12, 16), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "p.tif", rgb, photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(load_scan(tmp_path / "p.tif").data, np.moveaxis(rgb, 0, -1))
    stack = np.stack([_gradient(), 255 - _gradient()])
    tifffile.imwrite(tmp_path / "m.tif", stack)
    np.testing.assert_array_equal(load_scan(tmp_path / "m.tif").data, stack[0])  # first page
    # LZW needs imagecodecs in tifffile; Pillow decodes it instead.
    _save(Image.fromarray(_gradient()), tmp_path / "l.tif", compression="tiff_lzw")
    np.testing.assert_array_equal(load_scan(tmp_path / "l.tif").data, _gradient())


def test_float_tiff_nan_inf_replaced(tmp_path):
    arr = np.linspace(-1, 1, 100, dtype=np.float32).reshape(10, 10)
    arr[0, 0], arr[0, 1], arr[0, 2] = np.nan, np.inf, -np.inf
    tifffile.imwrite(tmp_path / "f.tif", arr)
    data = load_scan(tmp_path / "f.tif").data
    assert np.isfinite(data).all()
    finite = arr[np.isfinite(arr)]
    assert data[0, 0] == finite.min() and data[0, 1] == finite.max() and data[0, 2] == finite.min()


def test_content_wins_over_extension_and_bytes_input(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_gradient()).save(buf, format="PNG")
    path = tmp_path / "really_png.jpg"
    path.write_bytes(buf.getvalue())
    np.testing.assert_array_equal(load_scan(path).data, _gradient())
    np.testing.assert_array_equal(load_scan(buf.getvalue()).data, _gradient())


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("e.png", b"", "The file is empty."),
        ("t.png", b"hello, this is text\n" * 10, "named .png but its content is not a PNG"),
        ("t.txt", b"hello, this is text\n" * 10, "Unrecognised file type"),
        ("t.nii.gz", b"hello, this is text\n" * 30, "not a valid gzip"),
        ("t.nii", b"hello, this is text\n" * 30, "not a valid NIfTI"),
    ],
)
def test_bad_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_scan(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_scan(tmp_path / "nope.png")


@pytest.mark.parametrize(("fmt", "ext"), [("PNG", "png"), ("JPEG", "jpg")])
def test_truncated(tmp_path, fmt, ext):
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, format=fmt)
    path = tmp_path / f"cut.{ext}"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(InputError, match=f"The {fmt} file is truncated or corrupt."):
        load_scan(path)


def test_too_small(tmp_path):
    with pytest.raises(InputError, match="1x1 pixels; it must be at least 8x8"):
        load_scan(_save(Image.new("L", (1, 1)), tmp_path / "one.png"))


def test_decompression_bomb_refused_from_header(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png())
    start = time.perf_counter()
    with pytest.raises(InputError, match="too large"):
        load_scan(path)
    assert time.perf_counter() - start < 1.0


def test_max_pixels_limit_names_size(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSAM_MAX_PIXELS", "1000")
    with pytest.raises(InputError, match=r"100x50 pixels \(5,000\); the limit is 1,000"):
        load_scan(_save(Image.new("L", (100, 50)), tmp_path / "big.png"))
    with pytest.raises(InputError, match="the limit is 1,000 pixels per slice"):
        load_scan(_nifti(tmp_path, np.zeros((40, 40, 4), np.uint8)))


def test_max_pixels_env(monkeypatch):
    monkeypatch.setenv("MEDSAM_MAX_PIXELS", "1234")
    assert scan_module.max_pixels() == 1234
    monkeypatch.setenv("MEDSAM_MAX_PIXELS", "lots")
    with pytest.raises(ConfigError, match="MEDSAM_MAX_PIXELS must be a positive whole number, not 'lots'"):
        scan_module.max_pixels()


# --- DICOM ---------------------------------------------------------------------------------------


def _dicom(
    tmp_path: Path,
    pixels: np.ndarray | None,
    name: str = "x.dcm",
    photometric: str = "MONOCHROME2",
    **tags,
) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(tmp_path / name), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    if pixels is not None:
        ds.set_pixel_data(pixels, photometric, int(pixels.dtype.itemsize * 8))
    for key, value in tags.items():
        setattr(ds, key, value)
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_ct_rescale_to_hu(tmp_path):
    stored = (np.arange(16 * 20).reshape(16, 20) * 5).astype(np.uint16)
    path = _dicom(tmp_path, stored, Modality="CT", RescaleSlope=2, RescaleIntercept=-1024)
    scan = load_scan(path)
    assert scan.kind == "dicom" and scan.modality == "CT" and not scan.is_volume
    np.testing.assert_array_equal(scan.data, stored * 2.0 - 1024)
    assert scan.default_window == "CT soft tissue" and scan.dicom_window is None
    rgb = load_rgb(path)
    assert rgb.shape == (16, 20, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255  # -1024 HU and 2166 HU


def test_dicom_window_tags_become_default(tmp_path):
    stored = np.arange(16 * 16, dtype=np.uint16).reshape(16, 16)
    path = _dicom(tmp_path, stored, Modality="CT", WindowCenter=[50, 300], WindowWidth=[350, 2000])
    scan = load_scan(path)
    assert scan.dicom_window == (50.0, 350.0) and scan.default_window == (50.0, 350.0)


def test_dicom_monochrome1_inverted(tmp_path):
    stored = np.arange(16 * 16, dtype=np.uint16).reshape(16, 16)
    scan = load_scan(_dicom(tmp_path, stored, photometric="MONOCHROME1", Modality="CR"))
    np.testing.assert_array_equal(scan.data, 255.0 - stored)
    assert scan.default_window == "MR percentile 0.5-99.5"


def test_dicom_rgb_and_no_preamble(tmp_path):
    rgb = RNG.integers(0, 256, (12, 14, 3), dtype=np.uint8)
    scan = load_scan(_dicom(tmp_path, rgb, photometric="RGB", Modality="XC"))
    assert scan.rgb and scan.default_window == "None (as stored)"
    np.testing.assert_array_equal(scan.data, rgb)
    # A bare dataset (no preamble, no file meta) is read when the name says .dcm.
    ds = Dataset()
    ds.set_pixel_data(_gradient(), "MONOCHROME2", 8)
    ds.file_meta = FileMetaDataset()
    buf = io.BytesIO()
    ds.save_as(buf, implicit_vr=True, little_endian=True)
    np.testing.assert_array_equal(load_scan(buf.getvalue(), filename="bare.dcm").data, _gradient())
    with pytest.raises(InputError, match="Unrecognised"):
        load_scan(buf.getvalue(), filename="bare")


def test_dicom_no_pixel_data(tmp_path):
    with pytest.raises(InputError, match="The DICOM file has no pixel data."):
        load_scan(_dicom(tmp_path, None, Modality="CT"))


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, MPEG2MPML])
def test_dicom_compressed_unsupported_or_corrupt(tmp_path, syntax):
    path = _dicom(tmp_path, np.zeros((16, 16), np.uint16), Modality="CT")
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 60])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(InputError, match=re.escape(f"transfer syntax {syntax.name}")):
        load_scan(path)


def test_dicom_multiframe_volume(tmp_path):
    frames = RNG.integers(0, 4000, (3, 16, 20), dtype=np.uint16)
    scan = load_scan(_dicom(tmp_path, frames, Modality="MR"))
    assert scan.is_volume and scan.kind == "dicom" and scan.data.shape == (16, 20, 3)
    assert scan.n_slices(2) == 3 and scan.affine is None
    np.testing.assert_array_equal(scan.slice(2, 1), frames[1])
    mask = np.zeros((16, 20), bool)
    mask[2, 3] = True
    out = save_mask_nifti(mask, scan, 2, 1, tmp_path / "m.nii.gz")
    vol = np.asanyarray(nib.load(out).dataobj)
    assert vol.shape == (16, 20, 3) and np.argwhere(vol).tolist() == [[2, 3, 1]]


# --- NIfTI ---------------------------------------------------------------------------------------

# Axes permuted and flipped: voxel i runs to -z, j to -x, k to +y (neither RAS nor LPS).
ODD_AFFINE = np.array([[0, -1.5, 0, 10], [0, 0, 2.0, -5], [-3.0, 0, 0, 7], [0, 0, 0, 1]])


def _nifti(tmp_path: Path, data: np.ndarray, affine: np.ndarray = np.eye(4), name: str = "v.nii") -> Path:
    path = tmp_path / name
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def test_nifti_canonical_and_display_convention(tmp_path):
    data = np.arange(10 * 12 * 14, dtype=np.float32).reshape(10, 12, 14)
    scan = load_scan(_nifti(tmp_path, data, ODD_AFFINE, "odd.nii.gz"))
    canonical = nib.as_closest_canonical(nib.Nifti1Image(data, ODD_AFFINE))
    assert scan.kind == "nifti" and scan.is_volume and scan.source_shape == (10, 12, 14)
    np.testing.assert_array_equal(scan.data, np.asanyarray(canonical.dataobj))
    np.testing.assert_array_equal(scan.affine, ODD_AFFINE)
    # Axial view of RAS data: top row anterior (max y), left column patient right (max x).
    view = scan.slice(2, 4)
    nx, ny = scan.data.shape[:2]
    assert view.shape == (ny, nx)
    assert view[0, 0] == scan.data[-1, -1, 4] and view[-1, -1] == scan.data[0, 0, 4]
    assert scan.slice().shape == view.shape  # middle slice by default


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_nifti_mask_lands_on_source_voxel(tmp_path, axis):
    data = np.arange(10 * 12 * 14, dtype=np.float32).reshape(10, 12, 14)  # unique value per voxel
    scan = load_scan(_nifti(tmp_path, data, ODD_AFFINE))
    index = scan.n_slices(axis) - 2
    view = scan.slice(axis, index)
    value = view[1, 2]
    out = save_mask_nifti(view == value, scan, axis, index, tmp_path / "mask.nii.gz")
    saved = nib.load(out)
    np.testing.assert_array_equal(saved.affine, ODD_AFFINE)
    mask = np.asanyarray(saved.dataobj)
    assert mask.shape == data.shape and mask.dtype == np.uint8
    (voxel,) = np.argwhere(mask)
    assert data[tuple(voxel)] == value


def test_nifti_2d_4d_and_5d(tmp_path):
    flat = np.arange(16 * 20, dtype=np.int16).reshape(16, 20)
    scan = load_scan(_nifti(tmp_path, flat, name="flat.nii"))
    assert scan.data.shape == (16, 20, 1) and scan.source_shape == (16, 20, 1)
    np.testing.assert_array_equal(scan.slice(2, 0), np.fliplr(np.rot90(flat)))
    with pytest.raises(InputError, match="at least 8x8"):
        scan.slice(0, 3)
    series = RNG.normal(size=(10, 10, 10, 3)).astype(np.float32)
    scan = load_scan(_nifti(tmp_path, series, name="t.nii.gz"))
    np.testing.assert_array_equal(scan.data, series[..., 0])
    with pytest.raises(InputError, match="5 dimensions"):
        load_scan(_nifti(tmp_path, np.zeros((8, 8, 8, 2, 2), np.uint8), name="five.nii"))


def test_nifti_nan_inf_and_int32_extremes(tmp_path):
    data = np.linspace(-5, 5, 1000, dtype=np.float32).reshape(10, 10, 10)
    data[0, 0, 0], data[1, 1, 1], data[2, 2, 2] = np.nan, np.inf, -np.inf
    scan = load_scan(_nifti(tmp_path, data, name="nan.nii"))
    finite = data[np.isfinite(data)]
    assert np.isfinite(scan.data).all()
    assert scan.data[0, 0, 0] == scan.data[2, 2, 2] == finite.min() and scan.data[1, 1, 1] == finite.max()
    big = np.zeros((10, 10, 10), np.int32)
    big[0, 0, 0], big[9, 9, 9] = np.iinfo(np.int32).min, np.iinfo(np.int32).max
    scan = load_scan(_nifti(tmp_path, big, name="int.nii"))
    assert scan.data.min() == -(2.0**31) and scan.data.max() == 2.0**31
    view = apply_window(scan.slice(2, 0), "Min-max")
    assert view.min() == 0 and view.max() == 255


def test_nifti_gzip_truncated_and_pair_header(tmp_path):
    good = _nifti(tmp_path, np.zeros((10, 10, 10), np.float32), name="g.nii")
    gz = gzip.compress(good.read_bytes())
    with pytest.raises(InputError, match="truncated"):
        load_scan(gz[: len(gz) // 2], filename="cut.nii.gz")
    raw = bytearray(good.read_bytes())
    raw[344:348] = b"ni1\x00"  # header of a .hdr/.img pair
    with pytest.raises(InputError, match="single-file NIfTI-1"):
        load_scan(bytes(raw), filename="pair.nii")


def test_nifti_export_refused_for_2d_and_bad_names(tmp_path):
    scan = load_scan(_save(Image.fromarray(_gradient()), tmp_path / "g.png"))
    with pytest.raises(InputError, match="NIfTI export needs a volume"):
        save_mask_nifti(np.zeros((24, 32), bool), scan, 2, 0, tmp_path / "m.nii")
    vol = load_scan(_nifti(tmp_path, np.zeros((10, 10, 10), np.float32)))
    with pytest.raises(InputError, match=".nii or .nii.gz"):
        save_mask_nifti(np.zeros((10, 10), bool), vol, 2, 0, tmp_path / "m.png")
    with pytest.raises(InputError, match="The mask is 9x10 pixels but the slice is 10x10."):
        vol.place_slice(np.zeros((10, 9), bool), 2, 0)
    with pytest.raises(InputError, match="out of range"):
        vol.slice(2, 10)
    with pytest.raises(InputError, match="axis must be 0, 1 or 2"):
        vol.slice(3, 0)


# --- windowing -----------------------------------------------------------------------------------


def test_window_presets_order():
    assert list(WINDOW_PRESETS) == [
        "None (as stored)",
        "CT soft tissue",
        "CT lung",
        "CT bone",
        "CT brain",
        "MR percentile 0.5-99.5",
        "Min-max",
    ]


def test_window_level_width():
    hu = np.array([[40, -160, 240, -1000, 3000]], np.float32)
    np.testing.assert_array_equal(apply_window(hu, "CT soft tissue"), [[128, 0, 255, 0, 255]])
    np.testing.assert_array_equal(apply_window(hu, (0, 100)), [[230, 0, 255, 0, 255]])
    np.testing.assert_array_equal(apply_window(np.array([[-50, 0, 50]], np.float32), (0, 100)), [[0, 128, 255]])
    lung = apply_window(np.array([[-1350, -600, 150]], np.float32), "CT lung")
    np.testing.assert_array_equal(lung, [[0, 128, 255]])


def test_window_percentile_minmax_stored():
    ramp = np.arange(1000, dtype=np.float32).reshape(10, 100)
    out = apply_window(ramp, "MR percentile 0.5-99.5")
    assert out.dtype == np.uint8 and out[0, 0] == 0 and out[-1, -1] == 255 and out[0, 5] <= 1
    sparse = np.zeros((10, 10), np.float32)
    sparse[3, 3] = 7  # percentiles coincide: falls back to min-max
    assert apply_window(sparse, "MR percentile 0.5-99.5")[3, 3] == 255
    np.testing.assert_array_equal(apply_window(np.full((4, 4), 9.0), "Min-max"), np.zeros((4, 4)))
    np.testing.assert_array_equal(apply_window(np.array([[0, 5, 10]]), "Min-max"), [[0, 128, 255]])
    stored = apply_window(np.array([[-5, 100.4, 300]]), "None (as stored)")
    np.testing.assert_array_equal(stored, [[0, 100, 255]])
    assert apply_window(np.zeros((4, 5, 3)), "Min-max").shape == (4, 5, 3)


@pytest.mark.parametrize(
    ("window", "message"),
    [("CT liver", "Unknown window .*CT lung"), ((40, 0), "width must be a positive"), (("a",), "(level, width)")],
)
def test_window_bad(window, message):
    with pytest.raises(InputError, match=message):
        apply_window(np.zeros((8, 8)), window)


def test_to_rgb():
    gray = _gradient()
    for arr in (gray, gray[..., None], np.dstack([gray] * 3)):
        out = to_rgb(arr)
        assert out.shape == (24, 32, 3) and out.flags.c_contiguous
        np.testing.assert_array_equal(out[..., 1], gray)
    rgba = np.dstack([np.dstack([gray] * 3), np.zeros_like(gray)])
    assert to_rgb(rgba).max() == 0
    with pytest.raises(InputError, match="8-bit"):
        to_rgb(gray.astype(np.float32))


# --- masks ---------------------------------------------------------------------------------------


def test_load_mask_binary(tmp_path):
    mask = np.zeros((20, 30), np.uint8)
    mask[5:10, 5:15] = 255
    path = _save(Image.fromarray(mask), tmp_path / "m.png")
    out = load_mask(path, shape=(20, 30))
    assert out.dtype == bool and out.sum() == 50
    ones = load_mask(_save(Image.fromarray(mask // 255), tmp_path / "one.png"))
    np.testing.assert_array_equal(ones, out)
    red = np.zeros((20, 30, 3), np.uint8)
    red[mask > 0] = (255, 0, 0)
    np.testing.assert_array_equal(load_mask(_save(Image.fromarray(red), tmp_path / "r.png")), out)
    saved = save_mask_png(out, tmp_path / "s.png")
    np.testing.assert_array_equal(np.asarray(Image.open(saved)), mask)


def test_load_mask_errors(tmp_path):
    labels = np.zeros((20, 30), np.uint8)
    labels[:5], labels[5:10] = 1, 2
    with pytest.raises(InputError, match="The mask has 3 distinct values; a binary mask"):
        load_mask(_save(Image.fromarray(labels), tmp_path / "l.png"))
    two = np.where(labels == 1, 1, 255).astype(np.uint8)
    with pytest.raises(InputError, match="2 distinct values"):
        load_mask(_save(Image.fromarray(two), tmp_path / "two.png"))
    with pytest.raises(InputError, match="The mask is 30x20 pixels but the image is 512x512."):
        load_mask(_save(Image.fromarray(labels * 0), tmp_path / "z.png"), shape=(512, 512))


def test_scan_is_plain_dataclass():
    scan = Scan(np.zeros((8, 8, 3), np.float32), "image", rgb=True)
    assert not scan.is_volume and scan.n_slices(0) == 1


# --- real data (optional) ------------------------------------------------------------------------

DATA = os.environ.get("MEDSAM_DATA")


@pytest.mark.skipif(not (DATA and (Path(DATA) / "manifest.csv").is_file()), reason="MEDSAM_DATA not set")
def test_manifest_images_and_masks():
    root = Path(DATA)
    with open(root / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))[:20]
    assert rows
    for row in rows:
        image = load_rgb(root / row["image"])
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        mask = load_mask(root / row["mask"], shape=image.shape[:2])
        assert mask.any(), row["mask"]
