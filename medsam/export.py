"""Write a volume's label map: as NIfTI on the source's voxel grid, and as DICOM-SEG for a DICOM series.

A label map is an integer volume in ``Scan.data``'s orientation (0 background, one value per named
object). NIfTI export puts it back in the source file's voxel order with the source affine, so it
overlays the original in any viewer. DICOM-SEG export (``highdicom``) writes one frame per source
slice, referencing the source series' instances; de-identified series that lost their study or
series UIDs get generated ones, derived from their frame of reference so that a re-export matches.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.uid import generate_uid

from . import __version__
from .errors import InputError, MedsamError
from .scan import Scan


def label_map_nifti(labels: np.ndarray, scan: Scan, path: str | Path) -> Path:
    """``labels`` (data orientation) as a NIfTI file in the source's voxel order and affine."""
    if not scan.is_volume or labels.shape != scan.data.shape:
        raise InputError("A label map must have the volume's shape.")
    path = Path(path)
    dtype = np.uint8 if labels.max(initial=0) < 256 else np.uint16
    affine = np.eye(4) if scan.affine is None else scan.affine
    try:
        nib.save(nib.Nifti1Image(scan.to_source(labels.astype(dtype)), affine), path)
    except OSError as exc:
        raise MedsamError(f"Could not write the label map {path.name}.") from exc
    return path


def _source_images(headers: Sequence[pydicom.Dataset]) -> list[pydicom.Dataset]:
    """Copies of the series' headers with the identifiers a SEG references filled in where a
    de-identification removed them (SOP UIDs from the file meta; study and series UIDs generated)."""
    frame = str(headers[0].get("FrameOfReferenceUID", "") or "medsam")
    study = str(headers[0].get("StudyInstanceUID", "") or generate_uid(entropy_srcs=[frame, "study"]))
    series = str(headers[0].get("SeriesInstanceUID", "") or generate_uid(entropy_srcs=[frame, "series"]))
    out = []
    for ds in headers:
        ds = copy.deepcopy(ds)
        meta = getattr(ds, "file_meta", None)
        ds.SOPClassUID = ds.get("SOPClassUID") or (meta.MediaStorageSOPClassUID if meta else "")
        ds.SOPInstanceUID = ds.get("SOPInstanceUID") or (meta.MediaStorageSOPInstanceUID if meta else generate_uid())
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        for key in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyID", "AccessionNumber",
                    "ReferringPhysicianName", "StudyDate", "StudyTime"):
            if key not in ds:
                setattr(ds, key, "")
        out.append(ds)
    return out


def dicom_seg(labels: np.ndarray, scan: Scan, headers: Sequence[pydicom.Dataset], names: Mapping[int, str],
              path: str | Path) -> Path:
    """``labels`` (data orientation) as a DICOM-SEG of the series whose sorted slice headers are
    ``headers`` (as ``series.read_series`` returns them), one segment per value in ``names``."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if scan.kind != "series" or not headers:
        raise InputError("DICOM-SEG export needs a DICOM series as its source.")
    present = [v for v in sorted(names) if (labels == v).any()]
    if not present:
        raise InputError("There is nothing to export yet: segment an object first.")
    source = scan.to_source(labels)  # (columns, rows, slices) in the headers' order
    frames = np.stack([source[:, :, k].T for k in range(source.shape[2])])
    renumbered = np.zeros(frames.shape, np.uint8)  # SEG segments are numbered 1..n
    for number, value in enumerate(present, 1):
        renumbered[frames == value] = number
    algorithm = hd.AlgorithmIdentificationSequence(name="medsam", version=__version__,
                                                   family=codes.cid7162.ArtificialIntelligence)
    segments = [hd.seg.SegmentDescription(
        segment_number=number, segment_label=names[value], segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Tissue, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
        algorithm_identification=algorithm) for number, value in enumerate(present, 1)]
    sources = _source_images(headers)
    try:
        seg = hd.seg.Segmentation(
            source_images=sources, pixel_array=renumbered, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=segments, series_instance_uid=generate_uid(), series_number=900,
            sop_instance_uid=generate_uid(), instance_number=1, manufacturer="medsam",
            manufacturer_model_name="medsam", software_versions=__version__, device_serial_number="none",
            content_description="medsam segmentation", omit_empty_frames=True)
        seg.save_as(Path(path))
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise MedsamError(f"The DICOM-SEG could not be written for this series ({exc}).") from exc
    return Path(path)
