"""Result tables: reading the CSVs of a results folder, selecting rows, averaging seeds per pair.

Tables are pandas frames with the columns of ``COLUMNS`` (absent columns are added empty, so a
missing or half-written file never breaks a figure). A *pair* is one (image, mask) of the benchmark,
keyed by its mask path; a model's rows for one pair and strategy differ only by seed.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .names import STRATEGY_ORDER, model_label

log = logging.getLogger(__name__)

FILTER_COLUMNS = ("model", "modality", "strategy", "split")
PAIR_KEY = ["model", "strategy", "mask"]
BENCHMARK_NUMERIC = ["seed", "n_components", "n_prompted", "dice", "dice_oracle", "iou", "hd95", "nsd",
                     "center_fallback", "jitter_frac", "noc85", "noc90", "n_masks", "boundary_complexity",
                     "intensity_difference", "relative_size", "encode_ms", "decode_ms", "wall_ms"]
COLUMNS = {
    "benchmark": ["model", "dataset", "modality", "object", "image", "mask", "group", "split", "strategy",
                  *BENCHMARK_NUMERIC, "dice_per_click"],
    "published": ["source", "source_ref", "model", "dataset_scope", "modality", "strategy", "metric", "value",
                  "selection", "note"],
    "finetune": ["model", "strategy", "dataset", "modality", "object", "image", "mask", "seed", "dice"],
    "label_efficiency": ["dataset", "head", "k", "k_label", "draw", "class", "n_test", "dice_mean", "dice_std"],
    "label_efficiency3d": ["dataset", "head", "k", "k_label", "draw", "class", "n_test", "dice_mean", "dice_std",
                           "nsd_mean", "nsd_std", "steps"],
    "benchmark3d": ["model", "dataset", "object", "image", "label_values", "reference", "split", "strategy", "axis",
                    "dice3d", "nsd2mm", "hd95_mm", "volume_ml", "reference_ml", "slices", "reference_slices"],
}
# Repeated strings of the (large) benchmark table, stored as categoricals: fast grouping and filtering.
CATEGORICAL = ["model", "dataset", "modality", "object", "image", "mask", "group", "split", "strategy"]
NUMERIC = {"benchmark": BENCHMARK_NUMERIC, "published": ["value"], "finetune": ["seed", "dice"],
           "label_efficiency": ["k", "draw", "n_test", "dice_mean", "dice_std"],
           "label_efficiency3d": ["k", "draw", "n_test", "dice_mean", "dice_std", "nsd_mean", "nsd_std", "steps"],
           "benchmark3d": ["axis", "dice3d", "nsd2mm", "hd95_mm", "volume_ml", "reference_ml", "slices",
                           "reference_slices"]}
# (column, axis title, log axis and fit on log10 x)
DESCRIPTORS = (("boundary_complexity", "boundary complexity P²/(4πA)", True),
               ("intensity_difference", "intensity difference |Δ mean gray|/255", False),
               ("relative_size", "relative size (mask area / image area)", True))


@dataclass(frozen=True)
class Results:
    """The tables of a results folder; a missing, empty or unreadable file gives an empty table."""

    benchmark: pd.DataFrame
    published: pd.DataFrame
    finetune: pd.DataFrame
    label_efficiency: pd.DataFrame
    label_efficiency3d: pd.DataFrame
    benchmark3d: pd.DataFrame


def load_results(folder: Path) -> Results:
    """Read the result CSVs of ``folder`` (see ``COLUMNS``); absent columns are added empty."""
    return Results(**{name: _read(Path(folder) / f"{name}.csv", name) for name in COLUMNS})


def _read(path: Path, name: str) -> pd.DataFrame:
    df = pd.DataFrame(columns=COLUMNS[name])
    if path.is_file() and path.stat().st_size:
        data = path.read_bytes()
        if not data.endswith(b"\n"):  # a line being appended right now: leave it out
            data = data[: data.rfind(b"\n") + 1]
        try:
            df = pd.read_csv(io.BytesIO(data), on_bad_lines="skip", low_memory=False)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            log.warning("cannot read %s (%s); showing it as empty", path, exc)
    for column in COLUMNS[name]:
        if column not in df.columns:
            df[column] = np.nan
    for column in NUMERIC[name]:
        df[column] = pd.to_numeric(df[column], errors="coerce")
    if name == "benchmark":
        df[CATEGORICAL] = df[CATEGORICAL].astype("category")
    return df


def filter_rows(df: pd.DataFrame, models: Iterable[str] | None = None, modalities: Iterable[str] | None = None,
                strategies: Iterable[str] | None = None, splits: Iterable[str] | None = None) -> pd.DataFrame:
    """Rows whose model, modality, strategy and split are among those given.

    ``None`` leaves a column unfiltered, an empty list keeps no row; columns the table lacks
    (e.g. ``split`` in finetune.csv) are not filtered on.
    """
    keep = np.ones(len(df), dtype=bool)
    for column, values in zip(FILTER_COLUMNS, (models, modalities, strategies, splits)):
        if values is not None and column in df.columns:
            keep &= df[column].isin(list(values)).to_numpy()
    return df if keep.all() else df[keep]


def choices(df: pd.DataFrame, column: str) -> list[str]:
    """The distinct values of a column, strategies in benchmark order, others sorted."""
    values = [str(v) for v in df[column].dropna().unique()] if column in df.columns else []
    return strategy_order(values) if column == "strategy" else sorted(values)


def coverage_note(df: pd.DataFrame) -> str:
    """A warning when the selected models were run on different pairs (e.g. a finetuned model on the
    test split only), naming the split(s) that would put them on the same pairs; else ""."""
    if df.empty or df["model"].nunique() < 2:
        return ""
    per_model = df.groupby("model", observed=True)
    pairs = per_model["mask"].agg(lambda s: frozenset(s.unique()))
    if pairs.nunique() == 1:
        return ""
    counts = ", ".join(f"{model_label(m)} {len(p):,}" for m, p in pairs.items())
    shared = sorted(set.intersection(*per_model["split"].agg(lambda s: set(s.unique().astype(str)))))
    common = df[df["split"].isin(shared)].groupby("model", observed=True)["mask"].agg(lambda s: frozenset(s.unique()))
    how = (f"select Splits = {', '.join(shared)} to compare them on the same pairs"
           if shared and common.nunique() == 1 else "their means are not directly comparable")
    return f"The selected models were run on different pairs ({counts}): {how}."


def pair_means(df: pd.DataFrame, values: Sequence[str] = ("dice",)) -> pd.DataFrame:
    """One row per (model, strategy, pair): ``values`` averaged over seeds, pair columns kept."""
    keep = [c for c in ("dataset", "modality", "object", "split", "image", *(d for d, _, _ in DESCRIPTORS))
            if c in df.columns and c not in values]
    grouped = df.groupby(PAIR_KEY, sort=False, observed=True)
    out = grouped[list(values)].mean()
    out[keep] = grouped[keep].first()
    return out.reset_index()


def click_curves(df: pd.DataFrame) -> np.ndarray:
    """The ``dice_per_click`` JSON lists as an (n, clicks) array; a run that stopped early (exact
    mask) keeps its last DICE for the remaining clicks. Rows without a list are left out."""
    lists = [json.loads(v) for v in df["dice_per_click"] if isinstance(v, str) and v.startswith("[")]
    lists = [v for v in lists if v]
    if not lists:
        return np.empty((0, 0))
    width = max(map(len, lists))
    return np.array([v + [v[-1]] * (width - len(v)) for v in lists], dtype=float)


def strategy_order(values: Iterable[str]) -> list[str]:
    """``values`` in benchmark order (``STRATEGY_ORDER``), unknown ones last, sorted."""
    values = set(values)
    return [s for s in STRATEGY_ORDER if s in values] + sorted(values - set(STRATEGY_ORDER))
