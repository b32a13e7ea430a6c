"""The bundled example gallery: licence-clean, documented, and every example opens with its mask."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medsam.gallery import BUNDLED, EXPERT, INDEX_COLUMNS, bundled_examples, by_group, label_names
from medsam.prompts import bbox
from medsam.session import Session

ALLOWED = ("CC0 1.0", "CC BY 4.0", "CC BY-SA 4.0", "Apache-2.0")


def rows() -> list[dict]:
    with open(BUNDLED / "index.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == INDEX_COLUMNS
        return list(reader)


def test_index_lists_licence_clean_files_that_exist() -> None:
    table = rows()
    assert all(r["license"] in ALLOWED for r in table), {r["license"] for r in table}
    for r in table:
        for key in ("image", "mask"):
            path = BUNDLED / r[key]
            assert path.exists() and path.resolve().is_relative_to(BUNDLED.resolve()), r[key]
        assert r["source"] and r["citation"] and r["modality"] and r["object"]


def test_enough_real_pairs_and_two_volumes() -> None:
    table = rows()
    flat = [r for r in table if r["box"]]
    assert len(flat) >= 12 and len({r["image"] for r in flat}) >= 12
    assert {r["modality"] for r in flat} >= {"ct", "mri", "ultrasound", "x-ray", "octa"}
    volumes = {r["image"] for r in table if not r["box"]}
    assert any((BUNDLED / v).is_dir() for v in volumes), "a DICOM series"
    assert any(v.endswith(".nii.gz") and "ct" in v for v in volumes), "a CT volume"
    assert any(len(set(r2["object"] for r2 in flat if r2["image"] == r["image"])) > 1 for r in flat), \
        "several objects in one image"


def test_boxes_are_the_masks_tight_boxes() -> None:
    for r in rows():
        if not r["box"]:
            continue
        mask = np.asarray(Image.open(BUNDLED / r["mask"])) > 0
        assert mask.shape == Image.open(BUNDLED / r["image"]).size[::-1]
        assert [int(v) for v in r["box"].split()] == [int(v) for v in bbox(mask)], r["mask"]


def test_attribution_names_every_file_and_sharealike() -> None:
    text = (BUNDLED / "ATTRIBUTION.md").read_text()
    for r in rows():
        assert Path(r["image"]).name in text and r["license"] in text
    assert "CC BY-SA" in text and "stay CC BY-SA" in text
    assert text.count("not expert ground truth") >= 1


def test_volume_labels_say_they_are_model_predictions() -> None:
    volumes = [ex for ex in bundled_examples() if ex.is_volume]
    assert volumes and all(ex.reference == "TotalSegmentator prediction" for ex in volumes)
    assert all(ex.reference_text == "reference: TotalSegmentator prediction" for ex in volumes)
    names, reference = label_names(volumes[0].mask)
    assert reference != EXPERT and names[volumes[0].label_values[0]] == volumes[0].object
    assert all(ex.reference == EXPERT for ex in bundled_examples() if not ex.is_volume)


def test_the_gallery_stays_small() -> None:
    size = sum(p.stat().st_size for p in BUNDLED.rglob("*") if p.is_file())
    assert size < 10 * 2**20, f"{size / 2**20:.1f} MB"


def test_grouped_by_group_in_index_order() -> None:
    examples = bundled_examples()
    groups = by_group(examples)
    assert sorted(i for items in groups.values() for i, _ in items) == list(range(len(examples)))
    assert list(groups)[0] == examples[0].modality_name and all(ex.group == ex.modality_name for ex in examples)


@pytest.mark.parametrize("index", range(len(bundled_examples())))
def test_every_example_opens_with_its_mask_and_box(index: int) -> None:
    ex = bundled_examples()[index]
    s = Session()
    s.open_example(ex)
    assert s.rgb is not None and s.gt is not None and s.gt.any() and s.box is not None
    x0, y0, x1, y1 = s.box
    assert 0 <= x0 < x1 < s.rgb.shape[1] and 0 <= y0 < y1 < s.rgb.shape[0]
    ys, xs = np.nonzero(s.gt)
    assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max(), ys.max())
    if ex.is_volume:
        assert s.scan.is_volume and s.index == int(np.argmax(np.isin(s.gt_scan.data, ex.label_values).sum((0, 1))))
