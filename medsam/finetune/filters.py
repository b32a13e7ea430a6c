"""Choose everything mode's filters per model on the training split.

    python -m medsam.finetune filters --data DIR [--models litemedsam,litemedsam_ft] [--grid 8]
        [--per-dataset N] [--out results/]

Each training image's grid is decoded once: every non-empty candidate with its predicted IoU and
stability (``automatic.candidates`` with no filter), scored by DICE at the image size against each
of the image's training masks. For every pair of thresholds (predicted IoU: not used or
IOU_STEPS; stability: STABILITY_STEPS) the kept masks are those ``automatic.select`` keeps (filters,
then box NMS), and a pair scores the benchmark's ``everything`` DICE: each ground truth matched to
its best kept mask, 0 when none is kept, averaged over the training pairs.

That DICE can only grow as more masks are kept, so looser filters never lose by it; the choice is
therefore the pair with the fewest masks per image among those within TOLERANCE of the best mean
DICE. ``<out>/everything_filters.csv`` has every pair's mean DICE and masks per image, and
``<out>/everything_filters.json`` each model's choice with the command and commit that made it;
``ModelSpec.everything`` in ``medsam/models.py`` holds the chosen values.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..automatic import Candidates, candidates, select, upscale
from ..embeddings import features_for
from ..imaging import load_mask, load_rgb
from ..models import AutoFilters
from ..paths import REPO, command_line
from ..precision import measured_precision
from ..predictor import Predictor, load_model
from ..results import git_commit, machine, versions
from ..runner import DEFAULT_GRID, read_manifest

IOU_STEPS = tuple(round(0.1 * i, 1) for i in range(10))
STABILITY_STEPS = (*(round(0.1 * i, 1) for i in range(10)), 0.92, 0.95)
TOLERANCE = 0.01
EVERYTHING = AutoFilters(None, 0.0, "every non-empty candidate")


def threshold_pairs() -> list[AutoFilters]:
    return [AutoFilters(iou, stab, "search") for iou in (None, *IOU_STEPS) for stab in STABILITY_STEPS]


def candidate_dice(predictor: Predictor, emb, c: Candidates, truths: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """DICE of every candidate against every ground truth (N, G) at the image size, and which
    candidates are still non-empty there (N,)."""
    dice = np.zeros((len(c.logits), len(truths)))
    shown = np.zeros(len(c.logits), bool)
    for start in range(0, len(c.logits), 16):
        masks = torch.from_numpy(upscale(predictor, emb, c.logits[start:start + 16]))
        area = masks.sum((1, 2))
        shown[start:start + len(masks)] = (area > 0).numpy()
        for g, gt in enumerate(truths):
            t = torch.from_numpy(gt)
            dice[start:start + len(masks), g] = (2 * (masks & t).sum((1, 2)) / (area + t.sum())).numpy()
    return dice, shown


def sweep(predictor: Predictor, data: Path, pairs: pd.DataFrame, grid: int) -> pd.DataFrame:
    """One row per (threshold pair, training pair): the benchmark's everything DICE and mask count."""
    rows = []
    for image, group in tqdm(list(pairs.groupby("image", sort=False)), desc=f"{predictor.name} filters", unit="img"):
        rgb = load_rgb(data / image)
        truths = [load_mask(data / m, rgb.shape[:2]) for m in group["mask"]]
        emb = features_for(predictor, rgb)
        c = candidates(predictor, emb, grid, EVERYTHING)
        dice, shown = candidate_dice(predictor, emb, c, truths)
        for f in threshold_pairs():
            keep = select(c, f).numpy()
            keep = keep[shown[keep]]
            best = dice[keep].max(0) if len(keep) else np.zeros(len(truths))
            rows += [{"pred_iou": f.pred_iou, "stability": f.stability, "mask": m, "dice": d, "masks": len(keep)}
                     for m, d in zip(group["mask"], best)]
    return pd.DataFrame(rows)


def choose(table: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The best pair by mean DICE, and the chosen one: fewest masks within TOLERANCE of the best."""
    best = table.loc[table["dice"].idxmax()]
    near = table[table["dice"] >= best["dice"] - TOLERANCE]
    return best, near.sort_values(["masks_per_image", "dice"], ascending=[True, False]).iloc[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m medsam.finetune filters", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="benchmark folder with manifest.csv")
    parser.add_argument("--models", default="litemedsam,litemedsam_ft")
    parser.add_argument("--grid", type=int, default=DEFAULT_GRID, help="points per side (default: the benchmark's)")
    parser.add_argument("--per-dataset", type=int,
                        help="at most N training pairs per dataset, the first in the manifest (quicker runs)")
    parser.add_argument("--out", type=Path, default=REPO / "results")
    args = parser.parse_args(argv)
    manifest = read_manifest(args.data)
    pairs = manifest[manifest.split == "train"]
    if args.per_dataset:
        pairs = pairs.groupby("dataset_id", sort=False).head(args.per_dataset)
    csv, record = args.out / "everything_filters.csv", args.out / "everything_filters.json"
    old = pd.read_csv(csv) if csv.is_file() else pd.DataFrame()
    chosen = json.loads(record.read_text()) if record.is_file() else {}
    commit = git_commit(args.out)
    for model in args.models.split(","):
        t0 = time.perf_counter()
        per_pair = sweep(load_model(model, precision=measured_precision()), args.data, pairs, args.grid)
        table = per_pair.groupby(["pred_iou", "stability"], dropna=False).agg(
            dice=("dice", "mean"), masks_per_image=("masks", "mean"), pairs=("mask", "nunique")).reset_index()
        table.insert(0, "model", model)
        table.insert(1, "grid", args.grid)
        best, pick = choose(table)
        old = pd.concat([old[old["model"] != model] if len(old) else old, table])
        chosen[model] = {
            "pred_iou": None if pd.isna(pick["pred_iou"]) else float(pick["pred_iou"]),
            "stability": float(pick["stability"]), "train_dice": float(pick["dice"]),
            "masks_per_image": float(pick["masks_per_image"]),
            "best": {"pred_iou": None if pd.isna(best["pred_iou"]) else float(best["pred_iou"]),
                     "stability": float(best["stability"]), "train_dice": float(best["dice"]),
                     "masks_per_image": float(best["masks_per_image"])},
            "rule": f"fewest masks per image within {TOLERANCE} mean train DICE of the best",
            "grid": args.grid, "pairs": len(pairs), "images": int(pairs["image"].nunique()),
            "command": command_line(["python", "-m", "medsam.finetune", "filters"], argv or []),
            "git_commit": commit, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "wall_s": round(time.perf_counter() - t0, 1),
            "versions": versions(),
            "machine": machine()}
        print(f"{model}: chose {chosen[model]['pred_iou']} / {chosen[model]['stability']} "
              f"(train DICE {pick['dice']:.3f}, {pick['masks_per_image']:.1f} masks per image); "
              f"best {best['dice']:.3f} at {best['pred_iou']} / {best['stability']}")
    args.out.mkdir(parents=True, exist_ok=True)
    old.to_csv(csv, index=False)
    record.write_text(json.dumps(chosen, indent=2) + "\n")
