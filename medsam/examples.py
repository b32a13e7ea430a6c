"""Example images from a manifest-layout data folder (``--data DIR`` or env ``MEDSAM_DATA``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Example:
    label: str
    image: Path
    mask: Path


def data_dir(option: str | None = None) -> Path | None:
    """The configured data folder if it holds a manifest.csv, else None."""
    folder = option or os.environ.get("MEDSAM_DATA")
    if folder and (Path(folder) / "manifest.csv").is_file():
        return Path(folder)
    return None


def one_per_modality(folder: Path) -> list[Example]:
    """The first pair of each modality (test split preferred), labelled for a dropdown."""
    table = pd.read_csv(folder / "manifest.csv")
    table = table.assign(train=table.split.ne("test")).sort_values(["modality", "train", "dataset_id", "image"])
    picks = table.groupby("modality", sort=True).head(1)
    return [Example(f"{r.modality}: {r.object.replace('_', ' ')} ({r.dataset_id})",
                    folder / r.image, folder / r.mask) for r in picks.itertuples()]
