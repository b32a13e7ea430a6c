"""Volumes: propagation from one prompted slice, 3D scores with voxel spacing, and the view geometry."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medsam.imaging import load_scan
from medsam.metrics import volume_scores
from medsam.predictor import Prompt, load_model
from medsam.prompts import bbox
from medsam.volume import enlarged, every_slice, interpolated_box, propagate, propagate_keys, volume_ml


def _ellipsoid(shape=(64, 72, 24), centre=(30, 36, 12), radii=(16, 20, 7)) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A bright ellipsoid in a noisy volume stored in LPS order with 0.8 x 0.8 x 2.5 mm voxels."""
    obj = _ellipsoid()
    rng = np.random.default_rng(0)
    vol = (rng.normal(100, 10, obj.shape) + 600 * obj).astype(np.int16)
    path = tmp_path_factory.mktemp("vol") / "phantom.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.diag([-0.8, -0.8, 2.5, 1.0])), path)
    return path, obj


def test_spacing_follows_the_reorientation(phantom) -> None:
    scan = load_scan(phantom[0])
    assert scan.spacing == pytest.approx((0.8, 0.8, 2.5)) and scan.view_spacing(2) == pytest.approx((0.8, 0.8))
    assert scan.view_spacing(0) == pytest.approx((2.5, 0.8))


def test_view_and_unview_are_inverse(phantom) -> None:
    scan = load_scan(phantom[0])
    labels = np.arange(scan.data.size).reshape(scan.data.shape)
    for axis in range(3):
        plane = scan.view(labels, axis, 5)
        assert plane.shape == scan.slice(axis, 5).shape
        assert np.array_equal(scan.unview(plane), np.take(labels, 5, axis=axis))


def test_propagation_follows_the_structure_and_stops_where_it_ends(phantom) -> None:
    scan = load_scan(phantom[0])
    reference = scan.data > 400  # the ellipsoid, in the scan's own (RAS+) orientation
    z = int(np.argmax(reference.sum((0, 1))))
    box = bbox(scan.view(reference, 2, z))
    run = propagate(load_model("litemedsam"), scan, "Min-max", 2, z, Prompt(box=box))
    slices = np.flatnonzero(reference.any((0, 1)))
    assert set(run.slices) <= set(range(slices.min() - 1, slices.max() + 2)), "it stopped where the structure ends"
    assert "end of the volume" not in " ".join(run.stopped.values())
    assert run.encoded == len(run.slices) + 2  # each slice visited once, the two last ones refused
    scores = volume_scores(run.mask, reference, scan.spacing)
    upper = volume_scores(every_slice(load_model("litemedsam"), scan, "Min-max", 2, reference), reference, scan.spacing)
    assert scores["dice3d"] > 0.8 and upper["dice3d"] > 0.8
    assert volume_ml(run.mask, scan.spacing) == pytest.approx(run.mask.sum() * 0.8 * 0.8 * 2.5 / 1000)


def test_key_slices_prompt_the_slices_between_them_with_interpolated_boxes(phantom) -> None:
    """Boxes on three slices (the widest in the middle): every slice between two of them is segmented
    from a box mixed from theirs (no stop test there), and propagation goes on beyond the outer ones
    until the structure ends."""
    scan = load_scan(phantom[0])
    reference = scan.data > 400
    slices = np.flatnonzero(reference.any((0, 1)))
    low, high = int(slices.min()) + 2, int(slices.max()) - 2
    keys = {k: Prompt(box=bbox(scan.view(reference, 2, k))) for k in (low, (low + high) // 2, high)}
    run = propagate_keys(load_model("litemedsam"), scan, "Min-max", 2, keys)
    assert run.keys == sorted(keys) and set(range(low, high + 1)) <= set(run.slices)
    assert min(run.slices) < low and max(run.slices) > high, "it propagated beyond the outer keys"
    assert volume_scores(run.mask, reference, scan.spacing)["dice3d"] > 0.8


def test_interpolated_box_mixes_the_nearest_keys_by_distance() -> None:
    keys = {10: np.array([0, 0, 10, 10]), 14: np.array([4, 8, 20, 30]), 20: np.array([0, 0, 2, 2])}
    assert interpolated_box(keys, 12).tolist() == [2, 4, 15, 20]
    assert interpolated_box(keys, 14).tolist() == [4, 8, 20, 30]
    assert interpolated_box(keys, 17).tolist() == [2, 4, 11, 16]


def test_volume_scores_in_millimetres() -> None:
    a = np.zeros((20, 20, 20), bool)
    a[5:15, 5:15, 5:15] = True
    b = np.roll(a, 2, axis=2)  # two slices further along z
    s = volume_scores(a, b, (1.0, 1.0, 3.0))
    assert s["dice3d"] == pytest.approx(0.8) and s["hd95_mm"] == pytest.approx(6.0)
    assert volume_scores(a, a, (1.0, 1.0, 3.0)) == {"dice3d": 1.0, "iou3d": 1.0, "hd95_mm": 0.0, "nsd": 1.0}


def test_enlarged_box_grows_with_the_structure_and_stays_inside() -> None:
    m = np.zeros((300, 400), bool)
    m[0:5, 395:400] = True  # small: one pixel more, clipped at the border
    assert enlarged(m, 5).tolist() == [394, 0, 399, 5]
    big = np.zeros_like(m)
    big[100:200, 100:220] = True  # a tenth of 119 px is more than the cap
    assert enlarged(big, 5).tolist() == [95, 95, 224, 204]


def _zip_series(folder: Path, out: Path) -> Path:
    import zipfile

    with zipfile.ZipFile(out, "w") as z:
        for f in sorted(folder.iterdir()):
            z.write(f, f"series/{f.name}")
    return out


def test_segment_volume_api_on_the_dicom_series_zip(tmp_path: Path) -> None:
    """/segment_volume's work on the bundled DICOM series as a .zip, prompted in the file's own voxel
    indices; the label NIfTI lies on the series' grid and matches the reference liver."""
    import json

    from medsam.gallery import BUNDLED
    from medsam.series import load_series
    from medsam.service import segment_volume_files

    folder = BUNDLED / "volumes" / "ct_abdomen_dicom"
    reference = BUNDLED / "volumes" / "ct_abdomen_dicom_labels.nii.gz"
    scan = load_series(folder)
    liver = scan.to_source(load_scan(reference).data == 5)  # the stacked array: columns, rows, slices
    k = int(np.argmax(liver.sum((0, 1))))
    xs, ys = np.nonzero(liver[:, :, k])
    box = [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]
    path, info = segment_volume_files(_zip_series(folder, tmp_path / "ct.zip"),
                                      json.dumps({"axis": 2, "slice": k, "box": box}), "litemedsam", reference, "5")
    assert info["dice3d"] > 0.9 and info["volume_ml"] > 500 and k in info["slices"]
    out = nib.load(path)
    assert out.shape == scan.source_shape and np.allclose(out.affine, scan.affine)
    assert ((np.asarray(out.dataobj) > 0) & liver).sum() > 0.9 * liver.sum()
    # boxes on two slices: the slices between them come from interpolated boxes
    ends = [int(i) for i in np.flatnonzero(liver.any((0, 1)))[[2, -3]]]
    two = [{"axis": 2, "slice": i, "box": [int(v) for v in (*np.argwhere(liver[:, :, i]).min(0),
                                                          *np.argwhere(liver[:, :, i]).max(0))]} for i in ends]
    _, keyed = segment_volume_files(folder, json.dumps(two), "litemedsam", reference, "5")
    assert set(range(ends[0], ends[1] + 1)) <= set(keyed["slices"]) and "interpolated" in keyed["note"]
    assert keyed["dice3d"] > 0.9


@pytest.mark.parametrize("prompts, message", [
    ("{}", "Prompts must be JSON like"),
    ('{"axis": 2, "slice": 99, "box": [1, 1, 5, 5]}', "outside the 122x101x30 volume"),
    ('{"axis": 2, "slice": 3}', "Prompt the object on one slice first"),
    ('[]', "at least one prompt"),
    ('[{"axis": 2, "slice": 3, "box": [1, 1, 5, 5]}, {"axis": 1, "slice": 3, "box": [1, 1, 5, 5]}]', "same axis"),
    ('[3]', "Prompts must be JSON like"),
])
def test_segment_volume_bad_prompts_are_sentences(prompts: str, message: str) -> None:
    from medsam.errors import InputError
    from medsam.gallery import BUNDLED
    from medsam.service import segment_volume_files

    with pytest.raises(InputError, match=message):
        segment_volume_files(BUNDLED / "volumes" / "ct_abdomen.nii.gz", prompts, "litemedsam")


def test_segment_volume_refuses_a_2d_image() -> None:
    from medsam.errors import InputError
    from medsam.gallery import bundled_examples
    from medsam.service import segment_volume_files

    with pytest.raises(InputError, match="not a volume"):
        segment_volume_files(bundled_examples()[0].image, '{"axis": 2, "slice": 0, "box": [1, 1, 5, 5]}')


def test_session_objects_export_nifti_and_dicom_seg(tmp_path: Path) -> None:
    import highdicom as hd

    from medsam.gallery import bundled_examples
    from medsam.session import Session

    ex = next(e for e in bundled_examples() if e.id == "ct_abdomen_dicom__spleen")
    s = Session()
    s.open_example(ex)
    note = s.propagate("litemedsam")
    assert "Propagated **spleen**" in note
    rows = s.object_rows()
    assert rows[0]["object"] == "spleen" and rows[0]["dice3d"] > 0.85 and rows[0]["volume_ml"] > 50
    files = {p.name: p for p in s.export()}
    labels = load_scan(files["ct_abdomen_dicom_labels.nii.gz"])
    assert np.array_equal(labels.data > 0, s.objects.labels > 0)
    seg = hd.seg.segread(files["ct_abdomen_dicom_seg.dcm"])
    assert [x.SegmentLabel for x in seg.SegmentSequence] == ["spleen"]
    uids = [h.file_meta.MediaStorageSOPInstanceUID for h in s.scan.headers]
    frames = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True, relabel=False)
    source = s.scan.to_source(s.objects.labels > 0)
    assert np.array_equal(frames > 0, np.stack([source[:, :, k].T for k in range(source.shape[2])]))
