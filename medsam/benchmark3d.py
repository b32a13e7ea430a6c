"""The 3D benchmark: one prompt to a whole structure, against the per-slice upper bound.

    python -m medsam.benchmark3d --data VOLUMES --models litemedsam[,litemedsam_ft] --out results/
        [--datasets msd_hippocampus,brats2015_flair] [--split test] [--axis 2] [--limit N]

reads a volumes folder (``manifest.csv``: one row per volume and object, ``label_value`` the label
values that make up the object; ``../shared/volumes`` here) and runs four strategies per object:

- ``box_propagate``: the tight box of the reference on the slice where it is largest, then
  propagation up and down (``medsam.volume.propagate``, what ``/segment_volume`` does);
- ``box_every_slice``: every slice that holds the structure prompted with its own tight box, the
  per-slice upper bound MedSAM reports;
- ``box_ends_propagate``: boxes on the structure's first, middle and last slice, each propagated,
  their union kept within the first and last slice (the user said where the structure ends);
- ``box_keys_interpolate``: tight boxes on ``KEY_SLICES`` slices evenly spaced from the structure's
  first to its last, the slices between them prompted with interpolated boxes
  (``medsam.volume.propagate_keys``, what ``/segment_volume`` does with prompts on several slices).

One row per (model, volume, object, strategy) is appended to ``<out>/benchmark3d.csv`` (rows already
there are skipped: the run resumes) with 3D DICE, NSD at 2 mm and HD95 in mm (voxel spacing
respected), volumes in mL and slice counts; ``<out>/benchmark3d_provenance.json`` records each run.
Slices are shown through the volume's own default window (CT soft tissue, MR percentiles over the
whole volume). References marked ``model (...)`` in the manifest are model predictions: their rows
say so in ``reference``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from . import __version__
from .imaging import load_any
from .metrics import volume_scores
from .paths import command_line
from .precision import measured_precision
from .predictor import Predictor, Prompt, load_model
from .prompts import bbox
from .results import git_commit, record_run
from .scan import Scan
from .settings import settings
from .strategies import STRATEGIES_3D
from .volume import Propagation, every_slice, propagate, propagate_keys, volume_ml

STRATEGIES = tuple(STRATEGIES_3D)
COLUMNS = ["model", "dataset", "object", "image", "label_values", "reference", "split", "strategy", "axis",
           "dice3d", "nsd2mm", "hd95_mm", "volume_ml", "reference_ml", "slices", "reference_slices", "encoded",
           "seconds"]
KEY = ["model", "image", "object", "strategy"]
KEY_SLICES = 5


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m medsam.benchmark3d", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=settings().volumes, help="volumes folder (default: $MEDSAM_VOLUMES)")
    p.add_argument("--models", default="litemedsam")
    p.add_argument("--datasets", default="msd_hippocampus,brats2015_flair")
    p.add_argument("--split", default="test", help="test, train, demo or all")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--axis", type=int, default=2, choices=(0, 1, 2), help="slice axis of the propagation")
    p.add_argument("--limit", type=int, default=None, help="at most this many volumes per dataset")
    p.add_argument("--out", type=Path, default=Path("results"))
    args = p.parse_args(argv)
    if args.data is None or not (args.data / "manifest.csv").is_file():
        p.error("give --data, a volumes folder with manifest.csv (or set MEDSAM_VOLUMES)")
    if unknown := set(args.strategies.split(",")) - set(STRATEGIES):
        p.error(f"unknown strategies: {', '.join(sorted(unknown))}; choose from {', '.join(STRATEGIES)}")
    return args


def plan(args: argparse.Namespace) -> pd.DataFrame:
    m = pd.read_csv(args.data / "manifest.csv", dtype=str)
    m = m[m["dataset_id"].isin(args.datasets.split(","))]
    if args.split != "all":
        m = m[m["split"] == args.split]
    if args.limit:
        keep = m.groupby("dataset_id")["image"].apply(lambda s: list(dict.fromkeys(s))[: args.limit])
        m = m[m.apply(lambda r: r["image"] in keep[r["dataset_id"]], axis=1)]
    return m


def ends_propagate(predictor: Predictor, scan: Scan, axis: int, reference: np.ndarray) -> Propagation:
    """Boxes on the structure's first, middle and last slice, each propagated; the union within them."""
    present = np.flatnonzero(np.moveaxis(reference, axis, 0).any(axis=(1, 2)))
    first, last = int(present[0]), int(present[-1])
    union = Propagation(np.zeros(reference.shape, bool), axis, (first + last) // 2)
    for i in dict.fromkeys((first, (first + last) // 2, last)):
        run = propagate(predictor, scan, scan.default_window, axis, i, Prompt(box=bbox(scan.view(reference, axis, i))))
        union.mask |= run.mask
        union.encoded += run.encoded
    outside = [s for s in range(reference.shape[axis]) if not first <= s <= last]
    np.moveaxis(union.mask, axis, 0)[outside] = False
    union.areas = {int(s): int(a) for s, a in enumerate(np.moveaxis(union.mask, axis, 0).sum(axis=(1, 2))) if a}
    return union


def keys_interpolate(predictor: Predictor, scan: Scan, axis: int, reference: np.ndarray) -> Propagation:
    """Tight boxes on ``KEY_SLICES`` slices evenly spaced over the structure, interpolated between."""
    present = np.flatnonzero(np.moveaxis(reference, axis, 0).any(axis=(1, 2)))
    picks = np.unique(np.round(np.linspace(present[0], present[-1], KEY_SLICES)).astype(int))
    keys = {int(i): Prompt(box=bbox(scan.view(reference, axis, int(i))), multimask=False)
            for i in picks if scan.view(reference, axis, int(i)).any()}
    return propagate_keys(predictor, scan, scan.default_window, axis, keys)


def run_strategy(strategy: str, predictor: Predictor, scan: Scan, axis: int, reference: np.ndarray) -> Propagation:
    if strategy == "box_every_slice":
        start = time.perf_counter()
        mask = every_slice(predictor, scan, scan.default_window, axis, reference)
        run = Propagation(mask, axis, -1, {int(s): int(a) for s, a in
                                           enumerate(np.moveaxis(mask, axis, 0).sum(axis=(1, 2))) if a})
        run.seconds = time.perf_counter() - start
        return run
    if strategy == "box_ends_propagate":
        start = time.perf_counter()
        run = ends_propagate(predictor, scan, axis, reference)
        run.seconds = time.perf_counter() - start
        return run
    if strategy == "box_keys_interpolate":
        return keys_interpolate(predictor, scan, axis, reference)
    z = int(np.argmax(np.moveaxis(reference, axis, 0).sum(axis=(1, 2))))
    return propagate(predictor, scan, scan.default_window, axis, z, Prompt(box=bbox(scan.view(reference, axis, z))))


def row(model: str, r: pd.Series, strategy: str, axis: int, scan: Scan, reference: np.ndarray,
        run: Propagation) -> dict:
    s = volume_scores(run.mask, reference, scan.spacing)
    ref_slices = int(np.moveaxis(reference, axis, 0).any(axis=(1, 2)).sum())
    return {"model": model, "dataset": r["dataset_id"], "object": r["object"], "image": r["image"],
            "label_values": r["label_value"], "reference": r["reference"], "split": r["split"], "strategy": strategy,
            "axis": axis, "dice3d": s["dice3d"], "nsd2mm": s["nsd"], "hd95_mm": s["hd95_mm"],
            "volume_ml": volume_ml(run.mask, scan.spacing), "reference_ml": volume_ml(reference, scan.spacing),
            "slices": len(run.areas), "reference_slices": ref_slices, "encoded": run.encoded,
            "seconds": round(run.seconds, 2)}


def run(args: argparse.Namespace, argv: Sequence[str]) -> pd.DataFrame:
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.out / "benchmark3d.csv"
    done = set(pd.read_csv(csv, usecols=KEY).itertuples(index=False, name=None)) if csv.is_file() else set()
    todo = plan(args)
    start, rows_written = time.perf_counter(), 0
    for model in args.models.split(","):
        predictor = load_model(model, precision=measured_precision())
        for image, group in tqdm(todo.groupby("image", sort=False), desc=model, unit="volume"):
            scan = load_any(args.data / image)  # a NIfTI file or a DICOM series' folder
            labels = load_any(args.data / group.iloc[0]["label"]).data
            for _, r in group.iterrows():
                reference = np.isin(labels, [int(v) for v in str(r["label_value"]).split(",")])
                for strategy in args.strategies.split(","):
                    if (model, image, r["object"], strategy) in done or not reference.any():
                        continue
                    result = run_strategy(strategy, predictor, scan, args.axis, reference)
                    pd.DataFrame([row(model, r, strategy, args.axis, scan, reference, result)], columns=COLUMNS).to_csv(
                        csv, mode="a", header=not csv.is_file(), index=False)
                    rows_written += 1
    record_run(args.out / "benchmark3d_provenance.json", {
        "command": command_line(["python", "-m", "medsam.benchmark3d"], argv), "git_commit": git_commit(args.out),
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "medsam": __version__,
        "python": platform.python_version(), "rows_written": rows_written,
        "wall_seconds": round(time.perf_counter() - start, 1)})
    return pd.read_csv(csv)


def report(table: pd.DataFrame) -> pd.DataFrame:
    """Mean 3D DICE per model, dataset and strategy, and how much of the per-slice bound propagation keeps."""
    means = table.pivot_table(index=["model", "dataset"], columns="strategy", values="dice3d", aggfunc="mean")
    if {"box_propagate", "box_every_slice"} <= set(means.columns):
        means["kept_of_every_slice"] = means["box_propagate"] / means["box_every_slice"]
    if {"box_keys_interpolate", "box_every_slice"} <= set(means.columns):
        means["keys_kept_of_every_slice"] = means["box_keys_interpolate"] / means["box_every_slice"]
    return means.round(3)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    print(report(run(args, argv)).to_string())


if __name__ == "__main__":
    main()
