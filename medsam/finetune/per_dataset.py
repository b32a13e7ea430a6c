"""Per-dataset vs pooled decoder finetuning: is one decoder for all targets as good as one per task?

    python -m medsam.finetune per-dataset --data DIR --datasets hc18,kvasir_seg,cosmos_heart_mri
        [--steps 300] [--out results/]

COSMOS finetunes per task; our shipped ``litemedsam_ft`` is pooled over every training target. For
each dataset this trains a fresh decoder with the same recipe (``decoder.finetune``) on that
dataset's ``split == train`` pairs only, runs ``evaluate.STRATEGIES`` on its test pairs with the same
seeds as ``evaluate``, and sets the rows beside the zero-shot and pooled rows of ``<out>/finetune.csv``
(run ``evaluate`` first). Writes the raw rows to ``<out>/finetune_eval/per_dataset.csv`` (datasets
already there are skipped) and ``<out>/finetune_per_dataset.csv``: per dataset and strategy the pairs,
mean DICE of the three models, the paired difference per-dataset minus pooled with its Wilcoxon
p-value (``evaluate.paired_summary``), and the training time (reading the cached image embeddings
included). The per-dataset decoders are not saved.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import pandas as pd
import torch

from ..models import REGISTRY, build_model
from ..paths import command_line
from ..precision import measured_precision
from ..predictor import Predictor, load_model
from ..results import COLUMNS, git_commit, machine, record_run, versions
from ..runner import PairRunner, read_manifest, units
from .decoder import finetune, load_targets
from .evaluate import STRATEGIES, paired_summary

BASE, POOLED = "litemedsam", "litemedsam_ft"


def train_and_run(data: Path, dataset: str, manifest: pd.DataFrame, steps: int, seeds: int) -> pd.DataFrame:
    """Finetune on the dataset's training pairs, then the evaluation rows on its test pairs."""
    rows = manifest[manifest.dataset_id == dataset]
    start = time.perf_counter()
    targets = load_targets(load_model(BASE, precision=measured_precision()), data, rows[rows.split == "train"])
    model = build_model(REGISTRY[BASE])
    finetune(model, targets, steps)
    train_s = time.perf_counter() - start
    spec = dataclasses.replace(REGISTRY[POOLED], name=f"{POOLED}_{dataset}")
    runner = PairRunner(Predictor(spec, model, backend="torch"), data, grid=1, descriptors={})
    todo = units(STRATEGIES, seeds)
    out = [row for _, pair in rows[rows.split == "test"].iterrows() for row in runner.run(pair, todo)]
    return pd.DataFrame(out, columns=COLUMNS).assign(train_pairs=int((rows.split == "train").sum()),
                                                     steps=steps, train_seconds=round(train_s, 1))


def compare(own: pd.DataFrame, shared: pd.DataFrame) -> pd.DataFrame:
    """Per dataset x strategy: ``evaluate.paired_summary`` of per-dataset against pooled on the same
    prompts, with zero-shot's mean DICE and the training record beside it."""
    out = []
    for dataset, mine in own.assign(model="per_dataset").groupby("dataset"):
        rows = pd.concat([shared[shared.dataset == dataset], mine])
        zero_shot = paired_summary(rows, BASE, POOLED).set_index("strategy")[f"dice_{BASE}"]
        pair = paired_summary(rows, POOLED, "per_dataset")
        out.append(pair.assign(dataset=dataset, **{f"dice_{BASE}": pair["strategy"].map(zero_shot)},
                               **{k: mine[k].iloc[0] for k in ("train_pairs", "steps", "train_seconds")}))
    table = pd.concat(out, ignore_index=True)
    first = ["dataset", "strategy", "n", f"dice_{BASE}"]
    return table[first + [c for c in table.columns if c not in first]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m medsam.finetune per-dataset", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="benchmark folder with manifest.csv")
    parser.add_argument("--datasets", default="hc18,kvasir_seg,cosmos_heart_mri", help="comma-separated dataset ids")
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps per dataset (batch 8)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    shared_path = args.out / "finetune.csv"
    if not shared_path.is_file():
        raise SystemExit(f"There is no {shared_path}: run python -m medsam.finetune evaluate first.")
    manifest = read_manifest(args.data)
    wanted = [d for d in args.datasets.split(",") if d]
    unknown = sorted(set(wanted) - set(manifest.dataset_id))
    if unknown:
        raise SystemExit(f"Unknown dataset(s): {', '.join(unknown)}.")
    rows_path = args.out / "finetune_eval" / "per_dataset.csv"
    done = set(pd.read_csv(rows_path, usecols=["dataset"]).dataset) if rows_path.is_file() else set()
    extra = ["train_pairs", "steps", "train_seconds"]
    for dataset in [d for d in wanted if d not in done]:
        torch.manual_seed(0)
        start, commit = time.strftime("%Y-%m-%dT%H:%M:%S%z"), git_commit(args.out)
        rows = train_and_run(args.data, dataset, manifest, args.steps, args.seeds)
        header = not rows_path.is_file()
        rows_path.parent.mkdir(parents=True, exist_ok=True)
        rows[COLUMNS + extra].to_csv(rows_path, mode="a", header=header, index=False)
        record_run(rows_path.parent / "provenance.json", {
            "command": command_line(["python", "-m", "medsam.finetune", "per-dataset"], argv or []),
            "dataset": dataset, "git_commit": commit, "start": start, "rows_written": len(rows),
            "train_seconds": float(rows.train_seconds.iloc[0]), "steps": args.steps,
            "versions": versions(),
            "machine": machine()})
    summary = compare(pd.read_csv(rows_path), pd.read_csv(shared_path))
    summary.to_csv(args.out / "finetune_per_dataset.csv", index=False)
    print(summary.to_string(index=False))
