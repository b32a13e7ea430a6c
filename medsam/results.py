"""The benchmark's results on disk: the row schema, appending and resuming rows, shard files, summaries
and run records.

A benchmark folder holds ``benchmark.csv`` (one row per (model, pair, strategy, seed), the ``KEY``),
``benchmark.shard-i-of-n.csv`` for ``--shard`` runs until ``merge`` folds them in, ``summary.csv``
(``summarize``) and ``provenance.json`` (``{"runs": [...]}``, one record per run: ``record_run``).
Rows are appended with one flushed write per pair, so a killed run loses at most its last line, which
``done_keys`` drops before resuming. The same run records (``git_commit``, ``versions``, ``machine``)
are written by the finetuning and bench scripts.

Row columns beyond the manifest's (dataset = dataset_id):
- ``dice``: the deployable mask, i.e. per component the candidate the model scores highest, union;
  ``iou``, ``hd95`` (px; inf when the prediction is empty) and ``nsd`` (2 px) are of that mask too.
- ``dice_oracle``: per component the candidate with the best DICE against that component, union,
  then DICE against the whole ground truth (the COSMOS code's choice).
- ``n_components``: all 8-connected components; ``n_prompted``: how many (largest first, at most 20)
  were prompted separately (empty for ``interactive`` and ``everything``, which take the whole mask).
- ``center_fallback``: number of prompted components whose centroid fell outside them (so the
  interior point was clicked instead); ``jitter_frac``: mean over components of
  mean |edge shift| / mean(box width, height).
- ``interactive``: ``dice_per_click`` (JSON list, at most 10; stops early when the mask is exact),
  ``noc85`` / ``noc90``; its dice/iou/hd95 are those after the last click.
- ``everything``: ``n_masks`` automatic masks (the model's filters, ``ModelSpec.everything``);
  dice = dice_oracle = the best DICE among them (the ground truth is matched to its best mask; 0 when
  there are none).
- ``multimask``: whether the decoder returned 3 candidates (interactive: on the first click only).
- ``encode_ms`` (image encoder, even when the embedding came from the cache), ``decode_ms`` (all
  decoder calls of the row; for ``everything`` the image's whole mask generation, even when a pair
  on the same image made it) and ``wall_ms`` (the row's prompts, decoding and metrics, no encoding).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import __version__
from .paths import REPO
from .strategies import STRATEGIES

KEY = ["model", "mask", "strategy", "seed"]
PAIR_COLUMNS = ["dataset", "modality", "object", "image", "mask", "group", "split"]
COLUMNS = ["model", *PAIR_COLUMNS, "strategy", "seed", "multimask", "n_components", "n_prompted",
           "dice", "dice_oracle", "iou", "hd95", "nsd", "center_fallback", "jitter_frac",
           "dice_per_click", "noc85", "noc90", "n_masks", "boundary_complexity",
           "intensity_difference", "relative_size", "encode_ms", "decode_ms", "wall_ms"]


# --- rows -----------------------------------------------------------------------------------


def output_paths(out: Path, shard: tuple[int, int] | None) -> tuple[Path, Path]:
    """The CSV rows go to and the provenance file of a run."""
    tag = f".shard-{shard[0]}-of-{shard[1]}" if shard else ""
    return out / f"benchmark{tag}.csv", out / f"provenance{tag}.json"


def _repair_tail(path: Path) -> None:
    """Drop a half-written last line (a run killed mid-write) so the CSV parses and resumes."""
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


def done_keys(paths: Iterable[Path]) -> set[tuple[str, str, str, int]]:
    """Keys (model, mask, strategy, seed) of the rows already in the given CSVs or parquet shards."""
    done: set[tuple[str, str, str, int]] = set()
    for path in paths:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path, columns=KEY).astype({"seed": int})
        elif path.is_file() and path.stat().st_size:
            _repair_tail(path)
            df = pd.read_csv(path, usecols=KEY, dtype={"model": str, "mask": str, "strategy": str, "seed": int})
        else:
            continue
        done.update(df.itertuples(index=False, name=None))
    return done


def append_rows(path: Path, rows: list[dict]) -> None:
    """Append rows in COLUMNS order with one write, flushed to disk."""
    header = not path.is_file() or path.stat().st_size == 0
    text = pd.DataFrame(rows, columns=COLUMNS).to_csv(index=False, header=header)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


# --- tables ---------------------------------------------------------------------------------


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Mean dice and dice_oracle (with row and pair counts) by model x modality x strategy, plus
    modality "all" per model x strategy."""
    both = pd.concat([df, df.assign(modality="all")])
    out = both.groupby(["model", "modality", "strategy"], sort=False).agg(
        dice=("dice", "mean"), dice_oracle=("dice_oracle", "mean"),
        n_rows=("dice", "size"), n_pairs=("mask", "nunique")).reset_index()
    order = {s: i for i, s in enumerate(STRATEGIES)}
    out["_s"] = out["strategy"].map(order)
    out["_all"] = out["modality"] != "all"
    return out.sort_values(["model", "_all", "modality", "_s"]).drop(columns=["_s", "_all"])


def write_summary(out: Path) -> None:
    """``out/summary.csv`` from ``out/benchmark.csv``, when there are rows."""
    path = out / "benchmark.csv"
    if path.is_file() and path.stat().st_size:
        summarize(pd.read_csv(path)).to_csv(out / "summary.csv", index=False)


def merge(out: Path) -> tuple[int, int]:
    """Fold shard CSVs and provenance files into benchmark.csv / provenance.json and rewrite
    summary.csv; returns the shard files folded in (0: there were none, nothing changed) and the rows."""
    shards = sorted(out.glob("benchmark.shard-*-of-*.csv"))
    main_csv = out / "benchmark.csv"
    if not shards:
        return 0, 0
    for path in shards:
        _repair_tail(path)
    parts = [pd.read_csv(p, dtype={"seed": int}) for p in ([main_csv] if main_csv.is_file() else []) + shards]
    merged = pd.concat(parts).drop_duplicates(KEY)
    tmp = main_csv.with_suffix(".csv.tmp")
    merged.to_csv(tmp, index=False)
    os.replace(tmp, main_csv)
    for prov in sorted(out.glob("provenance.shard-*-of-*.json")):
        for run in json.loads(prov.read_text())["runs"]:
            record_run(out / "provenance.json", run)
        prov.unlink()
    for path in shards:
        path.unlink()
    write_summary(out)
    return len(shards), len(merged)


# --- run records ----------------------------------------------------------------------------


def git_commit(out: Path) -> str:
    """HEAD, with "-dirty" when tracked or untracked files (outside ``out``) differ from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True,
                                text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    try:
        skip = out.resolve().relative_to(REPO).as_posix().rstrip("/") + "/"
    except ValueError:
        skip = None
    dirty = [ln for ln in status if not (skip and ln[3:].strip('"').startswith(skip))]
    return head + ("-dirty" if dirty else "")


def versions() -> dict[str, str]:
    """The library versions a run record names."""
    return {"medsam": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def machine() -> dict[str, object]:
    """The machine a run record names."""
    return {"platform": platform.platform(), "cpu_count": os.cpu_count()}


def record_run(path: Path, run: dict) -> None:
    """Append one run's record to a provenance file {"runs": [...]}."""
    runs = json.loads(path.read_text())["runs"] if path.is_file() else []
    path.write_text(json.dumps({"runs": runs + [run]}, indent=2) + "\n")
