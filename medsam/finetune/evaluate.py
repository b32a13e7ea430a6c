"""Zero-shot vs finetuned on the test split, paired per prompt, with a Wilcoxon signed-rank test.

``python -m medsam.finetune evaluate --data DIR --out results/`` runs the benchmark runner (same
prompts, same seeds) for both models on ``split == test`` pairs into ``<out>/finetune_eval/``, then
writes ``<out>/finetune.csv`` (one row per model x strategy x pair x seed) and
``<out>/finetune_summary.csv`` (per strategy: pairs, mean DICE of each model, mean paired
difference, Wilcoxon p-value, wins and losses; interactive also NoC@85/90).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from scipy.stats import wilcoxon

from .. import benchmark

STRATEGIES = ["box", "point_center", "points_5pos", "interactive"]
KEYS = ["strategy", "dataset", "modality", "object", "image", "mask", "seed"]
COLUMNS = ["model", *KEYS, "split", "dice", "dice_oracle", "iou", "hd95", "noc85", "noc90"]


def paired_summary(rows: pd.DataFrame, base: str, tuned: str) -> pd.DataFrame:
    """Per strategy: mean DICE of both models on the pairs both have, the paired difference and test."""
    wide = rows.pivot_table(index=KEYS, columns="model", values="dice").dropna(subset=[base, tuned])
    out = []
    for strategy, group in wide.groupby(level="strategy"):
        diff = group[tuned] - group[base]
        test = wilcoxon(group[tuned], group[base]) if (diff != 0).any() else None
        row = {"strategy": strategy, "n": len(group), f"dice_{base}": group[base].mean(),
               f"dice_{tuned}": group[tuned].mean(), "mean_diff": diff.mean(),
               "wilcoxon_stat": None if test is None else float(test.statistic),
               "p_value": None if test is None else float(test.pvalue),
               "better": int((diff > 0.01).sum()), "worse": int((diff < -0.01).sum())}
        if strategy == "interactive":
            noc = rows[rows.strategy == "interactive"].groupby("model")[["noc85", "noc90"]].mean()
            row |= {f"{k}_{m}": noc.loc[m, k] for m in (base, tuned) if m in noc.index for k in ("noc85", "noc90")}
        out.append(row)
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m medsam.finetune evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="benchmark folder with manifest.csv")
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--base", default="litemedsam")
    parser.add_argument("--tuned", default="litemedsam_ft")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--limit", type=int, help="only the first N test pairs (round-robin over datasets)")
    parser.add_argument("--summarize-only", action="store_true",
                        help="only rebuild the tables from the rows already in <out>/finetune_eval")
    args = parser.parse_args(argv)
    if args.data is None and not args.summarize_only:
        parser.error("--data is required unless --summarize-only is given")
    folder = args.out / "finetune_eval"
    if not args.summarize_only:
        benchmark.main(["--data", str(args.data), "--out", str(folder), "--models", f"{args.base},{args.tuned}",
                        "--strategies", ",".join(STRATEGIES), "--split", "test", "--seeds", str(args.seeds),
                        *(["--limit", str(args.limit)] if args.limit else [])])
    rows = pd.read_csv(folder / "benchmark.csv")
    rows[[c for c in COLUMNS if c in rows]].to_csv(args.out / "finetune.csv", index=False)
    summary = paired_summary(rows, args.base, args.tuned)
    summary.to_csv(args.out / "finetune_summary.csv", index=False)
    print(summary.to_string(index=False))
