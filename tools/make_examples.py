"""Build the bundled example gallery ``assets/examples/`` from the benchmark and volume folders.

    python -m tools.make_examples --data ../shared/datasets --volumes ../shared/volumes

Only sources whose licence allows redistribution are used (CC0, CC BY, CC BY-SA, Apache-2.0). It
writes ``images/``, ``masks/`` and ``volumes/`` (2D images longer than 768 px are downscaled, masks
with nearest neighbour; volumes and the DICOM series are copied unchanged), ``index.csv`` (one row per
image and object; the box is the mask's tight box) and ``ATTRIBUTION.md``. Volume label files get a
``<label>.json`` sidecar naming each label value and saying what kind of reference the labels are.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage

from medsam.gallery import INDEX_COLUMNS, LABELS_SUFFIX
from medsam.prompts import bbox
from medsam.settings import settings

OUT = Path(__file__).resolve().parents[1] / "assets" / "examples"
MAX_SIDE = 768
LICENCE_URLS = {"CC0 1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
                "CC BY 4.0": "https://creativecommons.org/licenses/by/4.0/",
                "CC BY-SA 4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
                "Apache-2.0": "https://www.apache.org/licenses/LICENSE-2.0"}


@dataclass(frozen=True)
class Pick:
    """One 2D image of the benchmark folder and the objects to ship with it."""

    dataset: str
    image: str  # file name under <dataset>/images/
    objects: tuple[str, ...]
    licence: str
    source: str
    why: str  # what the example teaches, for ATTRIBUTION.md
    split_components: tuple[str, ...] = ()  # names for the mask's connected components, left to right


PICKS = [  # the first row is the example the page opens on
    Pick("sammed2d_demo_ct", "amos_0006_90.png", ("liver", "spleen", "aorta", "inferior_vena_cava"), "CC BY 4.0",
         "AMOS 2022, via SAM-Med2D's demo data", "several organs in one slice, large and small"),
    Pick("busi", "busi_malignant_17.png", ("breast_tumor",), "CC0 1.0",
         "BUSI (Breast Ultrasound Images Dataset), Kaggle", "an easy target: a well-defined tumour"),
    Pick("hc18", "hc18_805_hc.png", ("fetal_head",), "CC BY 4.0",
         "HC18 challenge, Zenodo 10.5281/zenodo.1327317", "an easy target with a faint boundary"),
    Pick("carotid_us", "carotid_202201121819140033vas_slice_655.png", ("common_carotid_artery",), "CC BY 4.0",
         "Common Carotid Artery Ultrasound Images, Mendeley Data 10.17632/d4xt63mgjm.1", "a vessel in cross-section"),
    Pick("ms_flair_mri", "msflair_113021.png", ("ms_lesions",), "CC BY 4.0",
         "Brain MRI dataset of multiple sclerosis (Muslim et al.), Data in Brief 2022",
         "a hard target: many small lesions, one box around all of them"),
    Pick("medscribble_scd", "scd_p7.png", ("lv_myocardium",), "CC0 1.0",
         "Sunnybrook Cardiac Data, via MedScribble (ScribblePrompt)",
         "a hard target: a ring (the myocardium), where a box selects the filled disc"),
    Pick("sammed2d_demo_ct", "s0114_111.png", ("aorta", "heart_myocardium", "lung_lower_lobe_left"), "CC BY 4.0",
         "TotalSegmentator dataset, via SAM-Med2D's demo data",
         "a thorax slice: an easy vessel and a hard ring-shaped myocardium"),
    Pick("msd_spleen_ct", "spleen_10021_spleen_3.png", ("spleen",), "CC BY-SA 4.0",
         "Medical Segmentation Decathlon Task09 (Spleen)", "an easy organ on CT"),
    Pick("medscribble_btcv_cervix", "btcv_0763890_image.png", ("bladder",), "CC BY 4.0",
         "BTCV Cervix (Synapse), via MedScribble (ScribblePrompt)", "a pelvic organ on CT"),
    Pick("covid_cxr_lungs", "cxr_41182_2020_203_fig5_html.png", ("lungs",), "CC BY 4.0",
         "COVID-19 Image Data Collection (ieee8023); lung polygons by V7 Labs (CC BY 4.0)",
         "two objects: each lung gets its own box", split_components=("right_lung", "left_lung")),
    Pick("medscribble_hipxray", "hipxray_image_130.png", ("proximal_femur",), "CC BY 4.0",
         "Hip X-ray dataset, via MedScribble (ScribblePrompt)", "bone on a radiograph"),
    Pick("medscribble_octa500", "octa500_10029.png", ("retinal_vessels",), "CC BY 4.0",
         "OCTA-500, via MedScribble (ScribblePrompt)",
         "a hard target: thin branching vessels, which no box can describe"),
]


@dataclass(frozen=True)
class VolumePick:
    """A volume of the volumes folder (a NIfTI file or a DICOM series folder) and the labels to name."""

    dataset: str
    name: str  # file or folder name under volumes/ in the gallery
    objects: tuple[str, ...]  # rows in index.csv (all the manifest's labels go into the sidecar)


VOLUME_PICKS = [
    VolumePick("totalseg_ct", "ct_abdomen.nii.gz", ("liver", "spleen", "kidney_left", "aorta")),
    VolumePick("totalseg_ct_dicom", "ct_abdomen_dicom", ("liver", "spleen", "aorta")),
    VolumePick("totalseg_mr", "mr_abdomen.nii.gz", ("liver", "spleen", "kidney_right")),
]


def save_png(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, optimize=True)


def shrink(image: Image.Image, resample: Image.Resampling) -> Image.Image:
    scale = MAX_SIDE / max(image.size)
    if scale >= 1:
        return image
    return image.resize((round(image.width * scale), round(image.height * scale)), resample)


def build_2d(data: Path, pick: Pick, manifest: pd.DataFrame) -> tuple[list[dict], list[str]]:
    """Copy one image and its masks; returns index rows and the ATTRIBUTION lines."""
    rows = manifest[(manifest.dataset_id == pick.dataset) & manifest.image.str.endswith("/" + pick.image)]
    stem = Path(pick.image).stem
    image = Image.open(data / rows.iloc[0].image)
    small = shrink(image, Image.Resampling.LANCZOS)
    save_png(np.asarray(small), OUT / "images" / f"{stem}.png")
    changes = [] if small.size == image.size else [f"downscaled from {image.width}x{image.height} "
                                                   f"to {small.width}x{small.height} px (masks: nearest neighbour)"]
    out = []
    for obj in pick.objects:
        row = rows[rows.object == obj].iloc[0]
        mask = np.asarray(shrink(Image.open(data / row["mask"]), Image.Resampling.NEAREST)) > 0
        parts = {obj: mask}
        if pick.split_components:
            labels, n = ndimage.label(mask)
            if n != len(pick.split_components):
                raise SystemExit(f"{pick.image}: {n} components, expected {len(pick.split_components)}")
            order = np.argsort([np.nonzero(labels == i)[1].mean() for i in range(1, n + 1)])
            parts = {name: labels == i + 1 for name, i in zip(pick.split_components, order)}
            changes.append(f"the {obj} mask split into its connected components ({', '.join(parts)}; "
                           f"patient's right is on the image's left)")
        for name, part in parts.items():
            mask_path = OUT / "masks" / f"{stem}__{name}.png"
            save_png(np.where(part, 255, 0).astype(np.uint8), mask_path)
            out.append({"image": f"images/{stem}.png", "mask": f"masks/{mask_path.name}", "modality": row.modality,
                        "object": name, "box": " ".join(str(int(v)) for v in bbox(part)),
                        "license": pick.licence, "source": pick.source, "citation": row.citation})
    lines = [f"- `images/{stem}.png` and `masks/{stem}__*.png` ({pick.why}): {pick.source}. "
             f"Licence: [{pick.licence}]({LICENCE_URLS[pick.licence]})"
             + (" (ShareAlike: these files stay CC BY-SA 4.0)" if "SA" in pick.licence else "")
             + f". Cite: {rows.iloc[0].citation}. Changes: {'; '.join(changes) or 'none'}."]
    return out, lines


def build_volume(volumes: Path, pick: VolumePick, manifest: pd.DataFrame) -> tuple[list[dict], list[str]]:
    rows = manifest[manifest.dataset_id == pick.dataset]
    first = rows.iloc[0]
    target = OUT / "volumes" / pick.name
    source = volumes / first.image
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    label = OUT / "volumes" / f"{pick.name.split('.')[0]}_labels.nii.gz"
    shutil.copyfile(volumes / first.label, label)
    reference = "TotalSegmentator prediction" if first.reference.startswith("model") else first.reference
    sidecar = {"reference": reference,
               "labels": {str(int(r.label_value)): r.object for r in rows.itertuples()}}
    label.with_name(label.name.removesuffix(".nii.gz") + LABELS_SUFFIX).write_text(json.dumps(sidecar, indent=1) + "\n")
    licence = "Apache-2.0"
    assert first.license.startswith(licence), first.license
    citation = ("Wasserthal et al., TotalSegmentator: robust segmentation of 104 anatomical structures in CT, "
                "Radiology: AI 2023")
    source_text = f"TotalSegmentator test files (wasserth/TotalSegmentator, {first.source_path.split(' | ')[0]})"
    out = [{"image": f"volumes/{pick.name}", "mask": f"volumes/{label.name}", "modality": first.modality,
            "object": obj, "box": "", "license": licence, "source": source_text, "citation": citation}
           for obj in pick.objects]
    what = "a DICOM series of 20 de-identified slices" if source.is_dir() else "a NIfTI volume"
    lines = [f"- `volumes/{pick.name}` ({what}) and `volumes/{label.name}` with its label names in "
             f"`{label.name.removesuffix('.nii.gz')}{LABELS_SUFFIX}`: {source_text}. The labels are "
             f"**TotalSegmentator's predictions, not expert ground truth**; the app calls them "
             f"\"reference: TotalSegmentator prediction\". Licence: [Apache-2.0]({LICENCE_URLS[licence]}). "
             f"Cite: {citation}. Changes: none (files renamed)."]
    return out, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=settings().data, help="benchmark folder")
    parser.add_argument("--volumes", type=Path, default=settings().volumes, help="volumes folder")
    args = parser.parse_args()
    if not args.data or not args.volumes:
        sys.exit("Give --data and --volumes (or MEDSAM_DATA and MEDSAM_VOLUMES).")
    shutil.rmtree(OUT, ignore_errors=True)
    manifest = pd.read_csv(args.data / "manifest.csv")
    vol_manifest = pd.read_csv(args.volumes / "manifest.csv")
    rows, lines = [], []
    for pick in PICKS:
        r, text = build_2d(args.data, pick, manifest)
        rows += r
        lines += text
    for vpick in VOLUME_PICKS:
        r, text = build_volume(args.volumes, vpick, vol_manifest)
        rows += r
        lines += text
    with open(OUT / "index.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, INDEX_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (OUT / "ATTRIBUTION.md").write_text(ATTRIBUTION.format(files="\n".join(lines)))
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"{len(rows)} examples ({len(PICKS)} images, {len(VOLUME_PICKS)} volumes), {size / 2**20:.1f} MB in {OUT}")


ATTRIBUTION = """# Bundled examples: sources, licences, changes

These images, masks and volumes are shipped with medsam so that the app shows something on its first
visit. They come only from sources whose licence allows redistribution (CC0, CC BY, CC BY-SA,
Apache-2.0); they keep their own licences, which are not the code's. `index.csv` lists one row per
(image, object) with the suggested box (the mask's tight box, in image pixels). The masks are the
datasets' own expert annotations, except for the three volumes, whose labels are TotalSegmentator
predictions. Built by `python -m tools.make_examples --data DATASETS --volumes VOLUMES`.

{files}
"""

if __name__ == "__main__":
    main()
