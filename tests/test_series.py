"""Tests for medsam.series: synthetic series built here, plus the real CT series in shared/volumes when present."""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML, CTImageStorage, ExplicitVRLittleEndian, generate_uid

from medsam import imaging, series
from medsam import scan as scan_module
from medsam.errors import InputError
from medsam.imaging import PERCENTILE, load_scan
from medsam.series import is_zip, load_series, read_series

ROWS, COLS, N = 16, 20, 6
SPACING = (0.8, 0.6)  # between rows, between columns
GAP = 2.5
ORIGIN = np.array([10.0, -20.0, 30.0])


def _rotation(a: float, b: float, c: float) -> np.ndarray:
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rz = np.array([[ca, -sa, 0], [sa, ca, 0], [0, 0, 1]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rx = np.array([[1, 0, 0], [0, cc, -sc], [0, sc, cc]])
    return rz @ ry @ rx


OBLIQUE = _rotation(0.3, -0.2, 0.25)  # columns: row direction r, column direction c, normal n (LPS)
AXIAL = np.eye(3)


def _stored(k: int) -> np.ndarray:
    """Slice k's stored int16 values: unique per voxel (k * 1000 + row * COLS + col)."""
    return (k * 1000 + np.arange(ROWS * COLS).reshape(ROWS, COLS)).astype(np.int16)


def _slices(rot: np.ndarray = OBLIQUE, n: int = N, **tags) -> list[FileDataset]:
    """A series in position order: n slices of ROWS x COLS int16, RescaleIntercept -1024."""
    uid = generate_uid()
    out = []
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(f"s{k}", {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.InstanceNumber = "CT", uid, n - k  # numbering runs backwards
        ds.set_pixel_data(_stored(k), "MONOCHROME2", 16)
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.ImageOrientationPatient = [float(v) for v in np.r_[rot[:, 0], rot[:, 1]]]
        ds.ImagePositionPatient = [float(v) for v in ORIGIN + k * GAP * rot[:, 2]]
        ds.PixelSpacing, ds.SliceThickness = list(SPACING), GAP
        for key, value in tags.items():
            setattr(ds, key, value)
        out.append(ds)
    return out


def _bytes(ds: FileDataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _pairs(datasets: list[FileDataset]) -> list[tuple[str, bytes]]:
    """(name, bytes) in shuffled order; names sort differently from positions."""
    order = np.random.default_rng(1).permutation(len(datasets))
    return [(f"IM{(7 * int(k)) % 11:04d}.dcm", _bytes(datasets[k])) for k in order]


def _folder(tmp_path: Path, datasets: list[FileDataset]) -> Path:
    folder = tmp_path / "series"
    folder.mkdir()
    for name, raw in _pairs(datasets):
        (folder / name).write_bytes(raw)
    return folder


def _zip(pairs: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, raw in pairs:
            zf.writestr(name, raw)
    return buf.getvalue()


def _built(scan: imaging.Scan) -> np.ndarray:
    """The stacked array (column, row, slice) before the RAS+ reorientation."""
    return apply_orientation(scan.data, ornt_transform(axcodes2ornt("RAS"), io_orientation(scan.affine)))


def _one_sentence(message: str) -> bool:
    return message[:1].isupper() and message.endswith(".") and "\n" not in message \
        and not re.search(r"[.!?]\s+[A-Z]", message)


# --- geometry --------------------------------------------------------------------------------


@pytest.mark.parametrize("rot", [OBLIQUE, AXIAL], ids=["oblique", "axial"])
def test_order_affine_and_values(tmp_path, rot):
    scan, headers = read_series(_folder(tmp_path, _slices(rot)))
    assert scan.kind == "series" and scan.oriented and scan.modality == "CT"
    assert scan.data.dtype == np.float32 and scan.data.flags.c_contiguous
    assert scan.source_shape == (COLS, ROWS, N) and scan.data.size == COLS * ROWS * N
    built = _built(scan)
    for k in range(N):  # sorted by position, not by file name or InstanceNumber
        np.testing.assert_array_equal(built[:, :, k], _stored(k).T - 1024.0)
    assert [int(h.InstanceNumber) for h in headers] == list(range(N, 0, -1))
    assert all("PixelData" not in h for h in headers)
    for i, j, k in [(0, 0, 0), (COLS - 1, 0, 0), (0, ROWS - 1, 0), (3, 5, N - 1), (COLS - 1, ROWS - 1, 2)]:
        lps = ORIGIN + k * GAP * rot[:, 2] + i * SPACING[1] * rot[:, 0] + j * SPACING[0] * rot[:, 1]
        ras = scan.affine @ [i, j, k, 1]
        np.testing.assert_allclose(ras[:3], lps * [-1, -1, 1], atol=1e-6)
    # Data in RAS+, as for NIfTI: the reoriented affine has a positive diagonal-dominant frame.
    ras_affine = scan.affine @ inv_ornt_aff(io_orientation(scan.affine), scan.source_shape)
    assert (io_orientation(ras_affine) == axcodes2ornt("RAS")).all()


def test_axial_is_ras(tmp_path):
    scan = load_series(_folder(tmp_path, _slices(AXIAL)))
    # LPS axial: columns go to patient left (R->L), rows to posterior: both flipped into RAS+.
    np.testing.assert_array_equal(scan.data, _built(scan)[::-1, ::-1, :])
    assert scan.data.shape == (COLS, ROWS, N)


def test_place_slice_round_trip(tmp_path):
    scan = load_series(_folder(tmp_path, _slices(n=10)))  # views along every axis need 8 pixels a side
    built = _built(scan)
    for axis in (0, 1, 2):
        index = scan.n_slices(axis) // 3
        view = scan.slice(axis, index)
        threshold = float(np.median(view))
        mask = scan.place_slice(view > threshold, axis, index)
        plane = scan.place_slice(np.ones(view.shape, bool), axis, index)
        assert mask.shape == plane.shape == scan.source_shape and mask.dtype == np.uint8
        assert plane.sum() == view.size
        np.testing.assert_array_equal(mask, plane & (built > threshold))


def test_sources_agree(tmp_path):
    datasets = _slices()
    pairs = _pairs(datasets)
    folder = _folder(tmp_path, datasets)
    (folder / "notes.txt").write_text("not DICOM")
    (folder / ".hidden.dcm").write_bytes(b"junk")
    junk = [("__MACOSX/._IM0001.dcm", b"junk"), ("series/.DS_Store", b"junk"), ("series/readme.txt", b"x")]
    raw = _zip([(f"series/{n}", b) for n, b in pairs] + junk)
    assert is_zip(raw) and not is_zip(pairs[0][1])
    (tmp_path / "s.zip").write_bytes(raw)
    reference = load_series(folder)
    for source in (raw, tmp_path / "s.zip", str(tmp_path / "s.zip"), pairs,
                   sorted(folder.glob("IM*.dcm")), tuple(str(p) for p in folder.glob("*"))):
        scan = load_series(source)
        np.testing.assert_array_equal(scan.data, reference.data)
        np.testing.assert_array_equal(scan.affine, reference.affine)


def test_bare_datasets_named_dcm():
    """Files without preamble and file meta (implicit VR) are read when named .dcm, skipped otherwise."""
    datasets = _slices()
    reference = load_series(_pairs(datasets))
    pairs = []
    for k, ds in enumerate(datasets):
        ds.preamble, ds.file_meta = None, FileMetaDataset()
        buf = io.BytesIO()
        ds.save_as(buf, implicit_vr=True, little_endian=True)
        assert buf.getvalue()[128:132] != b"DICM"
        pairs.append((f"{k}.dcm", buf.getvalue()))
    np.testing.assert_array_equal(load_series(pairs).data, reference.data)
    _refused([(name[:-4], raw) for name, raw in pairs], "No DICOM image files were found among the 6 files given.")


def test_windows_and_monochrome1(tmp_path):
    assert load_series(_pairs(_slices())).default_window == "CT soft tissue"
    mr = load_series(_pairs(_slices(Modality="MR")))
    assert mr.default_window == PERCENTILE and mr.dicom_window is None
    windowed = load_series(_pairs(_slices(WindowCenter=[50, 300], WindowWidth=[350, 2000])))
    assert windowed.default_window == windowed.dicom_window == (50.0, 350.0)
    plain = load_series(_pairs(_slices(Modality="MR")))
    inverted = load_series(_pairs(_slices(Modality="MR", PhotometricInterpretation="MONOCHROME1",
                                          WindowCenter=0, WindowWidth=100)))
    flip = float(plain.data.min() + plain.data.max())
    np.testing.assert_array_equal(inverted.data, flip - plain.data)
    assert inverted.dicom_window == (flip, 100.0)


def test_single_slice_uses_thickness():
    scan = load_series(_pairs(_slices(n=1)))
    assert scan.source_shape == (COLS, ROWS, 1)
    np.testing.assert_allclose(scan.affine[:3, 2], OBLIQUE[:, 2] * GAP * [-1, -1, 1])


def test_small_spacing_jitter_accepted():
    datasets = _slices(AXIAL)
    datasets[2].ImagePositionPatient = [float(v) for v in ORIGIN + [0, 0, 2 * GAP + 0.01]]
    assert load_series(_pairs(datasets)).source_shape == (COLS, ROWS, N)


# --- refusals --------------------------------------------------------------------------------


def _set(k: int, **tags) -> Callable[[list[FileDataset]], None]:
    def mutate(datasets: list[FileDataset]) -> None:
        for key, value in tags.items():
            if value is None:
                delattr(datasets[k], key)
            else:
                setattr(datasets[k], key, value)
    return mutate


def _undecodable(datasets: list[FileDataset]) -> None:
    ds = datasets[1]
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = encapsulate([b"\x00" * 64])
    ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True


def _colour(datasets: list[FileDataset]) -> None:
    datasets[0].set_pixel_data(np.zeros((ROWS, COLS, 3), np.uint8), "RGB", 8)


def _multiframe(datasets: list[FileDataset]) -> None:
    datasets[0].set_pixel_data(np.zeros((2, ROWS, COLS), np.int16), "MONOCHROME2", 16)


def _resized(datasets: list[FileDataset]) -> None:
    datasets[3].set_pixel_data(np.zeros((ROWS, COLS + 2), np.int16), "MONOCHROME2", 16)


AXIAL_IOP = [1.0, 0, 0, 0, 1, 0]
REFUSALS = {
    "two series": (_set(2, SeriesInstanceUID=generate_uid()), "The files hold 2 series; give one series at a time."),
    "size": (_resized, "differ in size"),
    "orientation": (_set(4, ImageOrientationPatient=[0.0, 1, 0, 0, 0, -1]), "differ in orientation"),
    "spacing": (_set(1, PixelSpacing=[0.7, 0.6]), "differ in pixel spacing"),
    "no position": (_set(3, ImagePositionPatient=None), "lack the geometry needed to stack them"),
    "no orientation": (_set(0, ImageOrientationPatient=None), "lack the geometry needed to stack them"),
    "duplicate": (_set(2, ImagePositionPatient=[float(v) for v in ORIGIN + 3 * GAP * OBLIQUE[:, 2]]),
                  "same slice position"),
    "missing slice": (lambda d: d.pop(3), "a slice may be missing"),
    "off line": (_set(2, ImagePositionPatient=[float(v) for v in ORIGIN + 2 * GAP * OBLIQUE[:, 2]
                                               + 3 * OBLIQUE[:, 0]]), "straight line"),
    "not perpendicular": (lambda d: [_set(k, ImageOrientationPatient=[1.0, 0, 0, 0.5, 0.5, 0])(d) for k in range(N)],
                          "not two perpendicular directions"),
    "multi-frame": (_multiframe, "a series of single-frame grayscale slices is expected"),
    "colour": (_colour, "a series of single-frame grayscale slices is expected"),
    "undecodable": (_undecodable, f"transfer syntax {MPEG2MPML.name} is not supported"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_refusals(case):
    mutate, phrase = REFUSALS[case]
    datasets = _slices()
    mutate(datasets)
    with pytest.raises(InputError) as info:
        load_series(_pairs(datasets))
    message = str(info.value)
    assert phrase in message and _one_sentence(message), message


def _refused(source, phrase: str) -> None:
    with pytest.raises(InputError) as info:
        load_series(source)
    message = str(info.value)
    assert phrase in message and _one_sentence(message), message


def test_no_dicom(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    _refused(tmp_path, "No DICOM image files were found among the 1 file given.")
    _refused(tmp_path / "empty_list_missing", "does not exist")
    _refused([], "non-empty list")
    _refused(b"not a zip", "not a .zip archive")
    _refused(_zip([("a.txt", b"x")]), "No DICOM image files")
    _refused(b"PK\x03\x04" + b"\x00" * 40, "The .zip file is corrupt")
    raw = _bytes(_slices(n=1)[0])
    rows = raw.find(b"\x28\x00\x10\x00US\x02\x00")  # the Rows element, explicit VR little endian
    damaged = raw[:rows + 6] + b"\xff\xff" + raw[rows + 8:]  # value length 65535: an unparseable Rows
    _refused([("x.dcm", damaged)], "The DICOM file x.dcm is corrupt or unreadable.")
    _refused([("x.dcm", raw[:-300])], "The pixel data of x.dcm (transfer syntax Explicit VR Little Endian) could not")


def test_size_limits(monkeypatch):
    pairs = _pairs(_slices())
    monkeypatch.setattr(scan_module, "VOLUME_FACTOR", 1)
    monkeypatch.setenv("MEDSAM_MAX_PIXELS", "1000")  # slices of 320 pixels pass, 1920 voxels do not
    monkeypatch.setattr(scan_module, "BYTES_PER_VOXEL_CAP", 100)  # the files' size is not what is refused
    _refused(pairs, "The volume is 20x16x6 voxels")
    monkeypatch.setattr(scan_module, "BYTES_PER_VOXEL_CAP", 4)
    _refused(pairs, "The files hold 9,")
    bomb = _zip([("a.dcm", b"\0" * 200_000)])  # over 4 * 1 * 1000 bytes once inflated
    assert len(bomb) < 2000
    _refused(bomb, "unpacks to more than")
    monkeypatch.setenv("MEDSAM_MAX_PIXELS", str(10**7))
    monkeypatch.setattr(series, "MAX_FILES", 3)
    _refused(_zip(pairs), "more than 3 files")
    _refused(pairs, "Too many files were given (6); at most 3")


# --- the real CT series ----------------------------------------------------------------------

VOLUMES = Path(os.environ.get("MEDSAM_VOLUMES", Path(__file__).resolve().parents[1].parent / "shared" / "volumes"))
CT_SERIES = VOLUMES / "totalseg_ct_dicom" / "images" / "example_ct_dicom"
CT_LABELS = VOLUMES / "totalseg_ct_dicom" / "labels" / "example_ct_dicom.nii.gz"


def test_real_ct_series_matches_labels():
    if not CT_SERIES.is_dir() or not CT_LABELS.is_file():
        pytest.skip(f"{CT_SERIES} is absent (set MEDSAM_VOLUMES)")
    scan, headers = read_series(CT_SERIES)
    labels = load_scan(CT_LABELS)
    assert scan.kind == "series" and scan.modality == "CT" and len(headers) == 20
    assert scan.data.shape == labels.data.shape == (512, 512, 20)
    # Same RAS+ grid as the converter that produced the labels (an independent geometry check).
    ras = [s.affine @ inv_ornt_aff(io_orientation(s.affine), s.source_shape) for s in (scan, labels)]
    np.testing.assert_allclose(ras[0], ras[1], atol=1e-3)
    for value in (1, 5):  # spleen, liver: soft tissue (contrast-enhanced scan)
        median = float(np.median(scan.data[labels.data == value]))
        assert 40 <= median <= 110, (value, median)
    assert np.median(scan.data[labels.data == 52]) > 120  # contrast in the aorta; a left-right flip gives ~70
    assert (scan.data < -100).mean() > 0.5  # mostly air and fat around the body
