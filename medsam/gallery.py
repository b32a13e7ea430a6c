"""Examples the app opens with a click: the bundled gallery and, optionally, a data folder's pairs.

The bundled gallery lives in ``assets/examples/`` (built by ``tools/make_examples.py``; licences in
its ``ATTRIBUTION.md``). Its ``index.csv`` has one row per (image, object) with the columns
``INDEX_COLUMNS``: paths relative to that folder, ``box`` as ``x0 y0 x1 y1`` in image pixels (empty
for volumes). The first row is the example the page opens on. For a volume, ``mask`` is a label file
and ``object`` names one of its labels; the label file's ``<stem>.json`` sidecar maps label values
to names and says what kind of reference the labels are (``expert`` or e.g. a model's prediction).

A data folder in the benchmark layout (``--data DIR`` / ``MEDSAM_DATA``) adds its first pair of each
modality, with the mask's tight box.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError
from .settings import settings

BUNDLED = Path(__file__).resolve().parents[1] / "assets" / "examples"
INDEX_COLUMNS = ["image", "mask", "modality", "object", "box", "license", "source", "citation"]
LABELS_SUFFIX = ".json"
EXPERT = "expert"
MODALITY_NAMES = {"ct": "CT", "mri": "MRI", "x-ray": "X-ray", "octa": "OCTA"}
DATA_GROUP = "Data folder"


@dataclass(frozen=True)
class Example:
    """One image (or volume) and one object in it, with its reference mask and suggested box."""

    image: Path  # a file, or a folder holding one DICOM series
    mask: Path  # a binary mask, or for volumes a label volume
    modality: str
    object: str
    box: tuple[int, int, int, int] | None = None  # None for volumes: derived from the slice shown
    license: str = ""
    source: str = ""
    citation: str = ""
    label_values: tuple[int, ...] | None = None  # volumes: the label values that make up the object
    reference: str = EXPERT
    bundled: bool = True

    @property
    def is_volume(self) -> bool:
        return self.label_values is not None

    @property
    def modality_name(self) -> str:
        return modality_name(self.modality)

    @property
    def label(self) -> str:
        """A caption: the object and what it is in, e.g. "liver (CT volume)"."""
        what = "DICOM series" if self.image.is_dir() else "volume" if self.is_volume else self.image.stem
        return f"{self.object.replace('_', ' ')} ({what})"

    @property
    def id(self) -> str:
        """A stable name for links, e.g. "amos_0006_90__liver"."""
        return f"{self.image.name.split('.')[0]}__{self.object}"

    @property
    def group(self) -> str:
        """The gallery tab it is shown in: its modality, or the data folder's own tab."""
        return self.modality_name if self.bundled else DATA_GROUP

    @property
    def caption(self) -> str:
        """A short caption for a thumbnail: the object, and for volumes what kind of volume."""
        kind = " · DICOM series" if self.image.is_dir() else " · volume" if self.is_volume else ""
        where = "" if self.bundled else f"{self.modality_name}: "
        return where + self.object.replace("_", " ") + kind

    @property
    def reference_text(self) -> str:
        """How the UI names the mask: ground truth, or a model's prediction used as a reference."""
        return "ground truth" if self.reference == EXPERT else f"reference: {self.reference}"


def modality_name(modality: str) -> str:
    return MODALITY_NAMES.get(modality.lower(), modality.capitalize())


def data_dir(option: str | None = None) -> Path | None:
    """The configured data folder if it holds a manifest.csv, else None."""
    folder = option or settings().data
    if folder and (Path(folder) / "manifest.csv").is_file():
        return Path(folder)
    return None


def _box(text: str) -> tuple[int, int, int, int] | None:
    if not isinstance(text, str) or not text.strip():
        return None
    x0, y0, x1, y1 = (int(float(v)) for v in text.split())
    return x0, y0, x1, y1


def label_names(label_file: Path) -> tuple[dict[int, str], str]:
    """A label volume's sidecar: {value: name} and the kind of reference ("expert" if absent)."""
    sidecar = label_file.with_name(label_file.name.split(".")[0] + LABELS_SUFFIX)
    if not sidecar.is_file():
        return {}, EXPERT
    meta = json.loads(sidecar.read_text())
    return {int(k): v for k, v in meta.get("labels", {}).items()}, meta.get("reference", EXPERT)


def bundled_examples(folder: Path = BUNDLED) -> list[Example]:
    """The gallery's examples in index order (the first one opens the page); [] if it is missing."""
    index = folder / "index.csv"
    if not index.is_file():
        return []
    out = []
    for row in pd.read_csv(index, dtype=str, keep_default_na=False).itertuples():
        image, mask = folder / row.image, folder / row.mask
        values, reference = None, EXPERT
        if not row.box:
            names, reference = label_names(mask)
            values = tuple(v for v, n in names.items() if n == row.object)
            if not values:
                raise InputError(f"The label file {row.mask} has no label named {row.object}.")
        out.append(Example(image, mask, row.modality, row.object, _box(row.box), row.license, row.source,
                           row.citation, values, reference))
    return out


def data_examples(folder: Path) -> list[Example]:
    """The first pair of each modality of a benchmark folder (test split preferred)."""
    from PIL import Image

    table = pd.read_csv(folder / "manifest.csv")
    table = table.assign(train=table.split.ne("test")).sort_values(["modality", "train", "dataset_id", "image"])
    out = []
    for r in table.groupby("modality", sort=True).head(1).itertuples():
        ys, xs = np.nonzero(np.asarray(Image.open(folder / r.mask)))
        box = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
        out.append(Example(folder / r.image, folder / r.mask, r.modality, r.object, box, r.license,
                           r.dataset_id, r.citation, bundled=False))
    return out


def all_examples(data: Path | None = None) -> list[Example]:
    """Bundled examples first, then the data folder's (if one is configured)."""
    return bundled_examples() + (data_examples(data) if data else [])


def by_group(examples: list[Example]) -> dict[str, list[tuple[int, Example]]]:
    """Examples with their index, grouped for the gallery's tabs (bundled ones by modality, a data
    folder's in one tab), groups in order of first appearance."""
    groups: dict[str, list[tuple[int, Example]]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(ex.group, []).append((i, ex))
    return groups
