"""Training AutoSAM-style prompt-free heads (``medsam.heads``) and the label-efficiency study.

Heads train on LiteMedSAM's frozen image features (from the disk cache) with a DICE + BCE loss per
class; a class without a mask on an image is absent (an empty target there). The study:

    python -m medsam.finetune heads --data DIR --datasets hc18,kvasir_seg --k 1,2,4,8,all --draws 3
        --out results/ [--heads decoder,cnn,linear,unet] [--steps N] [--batch-size B] [--threads T]

trains every head on k labelled training images (draw d: the first k of a seeded permutation, so a
draw's subsets are nested) and writes one row per (dataset, head, k, draw, class) to
``<out>/label_efficiency.csv`` (rows already there are skipped), and a run record to
``<out>/label_efficiency_provenance.json``.

    python -m medsam.finetune heads --data DIR --datasets hc18 --heads decoder,cnn,linear --save [FOLDER]

instead trains each head once on all of a dataset's training images and saves it as
``FOLDER/<dataset>-<head>.pt`` (default ``<checkpoint dir>/heads``), where the app finds it
(``medsam.heads.find_heads``) for prompt-free segmentation.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..embeddings import features_for
from ..errors import InputError, MedsamError
from ..heads import (
    ENCODER,
    KINDS,
    PREPROCESSING,
    build_head,
    head_logits,
    heads_dir,
    save_head,
)
from ..imaging import load_mask, load_rgb
from ..metrics import dice
from ..models import Geometry
from ..paths import command_line
from ..predictor import Predictor, as_rgb, load_model
from ..results import git_commit, machine, record_run, versions

# Equal steps for every head, set by trials on hc18 and wbc_cellavision (k=4): with 80 steps, or
# the same compute in batches of 2, the decoder lagged; a cosine decay hurt; decoder lr 2e-3
# diverged. Seconds per training on one core: decoder ~27, unet ~22, cnn ~6, linear ~0.3; the
# default study (90 x 4 trainings, evaluation, encoding 184 images) is ~95 CPU-minutes.
STEPS = 100
BATCH_SIZE = 1
LR = {"decoder": 1e-3, "cnn": 1e-3, "linear": 1e-1, "unet": 3e-3}
DATASETS = "hc18,kvasir_seg,camus_echo,ph2,wbc_cellavision,covid_cxr_lungs"
COLUMNS = ["dataset", "head", "k", "k_label", "draw", "class", "n_test", "dice_mean", "dice_std",
           "train_seconds", "steps"]
KEY = ["dataset", "head", "k_label", "draw", "class"]


# --- data -----------------------------------------------------------------------------------


@dataclass
class Item:
    """One image of a dataset: the head inputs, its targets on the model grid and at full size."""

    name: str
    features: torch.Tensor  # (256, 64, 64) frozen LiteMedSAM features
    pixels: torch.Tensor  # (3, 256, 256) LiteMedSAM's preprocessed input (the U-Net's input)
    target: torch.Tensor  # (C, 256, 256) float 0/1 on the padded grid
    masks: np.ndarray  # (C, H, W) bool at the original size
    geometry: Geometry


def to_grid(masks: np.ndarray, geo: Geometry) -> torch.Tensor:
    """(C, H, W) bool masks -> (C, 256, 256) float on the padded model grid (nearest neighbour)."""
    h, w = geo.resized
    grid = np.zeros((len(masks), geo.input_size, geo.input_size), np.float32)
    for c, m in enumerate(masks):
        grid[c, :h, :w] = cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    return torch.from_numpy(grid)


def make_item(rgb: np.ndarray, masks: np.ndarray, predictor: Predictor, name: str = "") -> Item:
    """An item from an RGB uint8 image and its (C, H, W) masks; features come from the disk cache."""
    rgb = as_rgb(rgb)
    emb = features_for(predictor, rgb)
    pixels, geo = PREPROCESSING.image(rgb)
    return Item(name, emb.features[0].cpu(), pixels[0], to_grid(masks, geo), masks.astype(bool), geo)


def dataset_classes(rows: pd.DataFrame) -> list[str]:
    """A dataset's class order: its sorted object names."""
    return sorted(rows["object"].unique())


def load_items(data: Path, rows: pd.DataFrame, classes: Sequence[str], predictor: Predictor) -> list[Item]:
    """Items for the images of manifest ``rows`` (one dataset), in order of first appearance."""
    items = []
    for image, group in tqdm(rows.groupby("image", sort=False), desc="images", unit="img", leave=False):
        rgb = load_rgb(data / image)
        masks = np.zeros((len(classes), *rgb.shape[:2]), bool)
        for obj, mask in zip(group["object"], group["mask"]):
            masks[classes.index(obj)] |= load_mask(data / mask, rgb.shape[:2])
        items.append(make_item(rgb, masks, predictor, image))
    return items


def _inputs(kind: str, items: Sequence[Item]) -> torch.Tensor:
    return torch.stack([it.pixels if kind == "unet" else it.features for it in items])


# --- training and evaluation ----------------------------------------------------------------


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft DICE (per image and class, smoothed by 1) plus binary cross-entropy."""
    prob = logits.sigmoid()
    inter = (prob * target).sum((-2, -1))
    total = prob.sum((-2, -1)) + target.sum((-2, -1))
    soft_dice = (2 * inter + 1) / (total + 1)
    return (1 - soft_dice).mean() + F.binary_cross_entropy_with_logits(logits, target)


def _batches(n: int, size: int, steps: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """``steps`` batches of indices, walking through seeded permutations of 0..n-1."""
    order = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        while len(order) < size:
            order = torch.cat([order, torch.randperm(n, generator=gen)])
        yield order[:size]
        order = order[size:]


def train_head(kind: str, train_items: Sequence[Item], steps: int = STEPS, seed: int = 0,
               batch_size: int = BATCH_SIZE, lr: float | None = None, weight_decay: float = 1e-4,
               losses: list[float] | None = None) -> nn.Module:
    """Train a new head with AdamW (constant learning rate) on ``train_items`` (batches of
    min(batch_size, n) images).

    Deterministic for a seed (initialisation and batch order). ``decoder`` starts from LiteMedSAM's
    decoder; ``lr`` defaults to the head's ``LR``; each step's loss is appended to ``losses``.
    """
    if not train_items:
        raise InputError("There are no training images.")
    sam = load_model(ENCODER).model if kind == "decoder" else None  # built before seeding: it draws too
    torch.manual_seed(seed)
    model = build_head(kind, len(train_items[0].target), sam).train()
    x, y = _inputs(kind, train_items), torch.stack([it.target for it in train_items])
    opt = torch.optim.AdamW(model.parameters(), lr=lr or LR[kind], weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    for idx in _batches(len(x), min(batch_size, len(x)), steps, gen):
        loss = dice_bce_loss(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if losses is not None:
            losses.append(loss.item())
    return model.eval()


def evaluate(model: nn.Module, kind: str, test_items: Sequence[Item]) -> np.ndarray:
    """DICE at the original resolution, (n_images, C); 1.0 where a class is absent and not predicted."""
    model.eval()
    scores = np.zeros((len(test_items), len(test_items[0].masks) if test_items else 0))
    for i, item in enumerate(test_items):
        pred = (head_logits(model, _inputs(kind, [item]), item.geometry)[0] > 0).numpy()
        scores[i] = [dice(p, g) for p, g in zip(pred, item.masks)]
    return scores


# --- the label-efficiency study -------------------------------------------------------------


def subset(train_images: Sequence[str], k: int, dataset: str, draw: int) -> list[str]:
    """Draw ``draw``'s k training images: the first k of a permutation seeded by dataset and draw."""
    rng = np.random.default_rng([draw, zlib.crc32(dataset.encode())])
    return [train_images[i] for i in rng.permutation(len(train_images))[:k]]


def done_keys(path: Path) -> set[tuple]:
    """Keys (dataset, head, k_label, draw, class) already in the CSV."""
    if not path.is_file() or not path.stat().st_size:
        return set()
    df = pd.read_csv(path, usecols=KEY, dtype={"k_label": str, "draw": int, "class": str})
    return set(df[KEY].itertuples(index=False, name=None))


def append_rows(path: Path, rows: list[dict]) -> None:
    """Append rows in COLUMNS order with one write, flushed to disk."""
    header = not path.is_file() or path.stat().st_size == 0
    with open(path, "a", encoding="utf-8") as f:
        f.write(pd.DataFrame(rows, columns=COLUMNS).to_csv(index=False, header=header))
        f.flush()
        os.fsync(f.fileno())


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one plain sentence, no usage dump
        raise SystemExit(f"{self.prog}: {message[0].upper()}{message[1:].rstrip('.')}.")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = _Parser(prog="python -m medsam.finetune heads", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder with manifest.csv and the files it names")
    p.add_argument("--datasets", default=DATASETS, help=f"comma-separated dataset ids (default {DATASETS})")
    p.add_argument("--k", default="1,2,4,8,all", help="labelled training images per run: numbers and/or 'all'")
    p.add_argument("--draws", type=int, default=3, help="draws 0..N-1 of the k images (default 3)")
    p.add_argument("--heads", default=",".join(KINDS), help=f"comma-separated heads (default {','.join(KINDS)})")
    p.add_argument("--steps", type=int, default=STEPS, help=f"optimiser steps per training (default {STEPS})")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, help=f"images per step (default {BATCH_SIZE})")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 on a busy machine)")
    p.add_argument("--save", nargs="?", type=Path, const=heads_dir(), metavar="FOLDER",
                   help=f"no study: train each head on all training images and save it (default {heads_dir()})")
    p.add_argument("--out", type=Path, help="output folder of the study (created; resumed if present)")
    args = p.parse_args(argv)
    if args.out is None and args.save is None:
        p.error("give --out (the study's output folder) or --save")
    args.datasets = [d for d in args.datasets.split(",") if d]
    args.heads = [h for h in args.heads.split(",") if h]
    if bad := [h for h in args.heads if h not in KINDS]:
        p.error(f"unknown head '{bad[0]}'; choose from {', '.join(KINDS)}")
    args.k = [k.strip() for k in args.k.split(",") if k.strip()]
    if not args.k or any(k != "all" and not (k.isdigit() and int(k) > 0) for k in args.k):
        p.error("--k must be positive numbers and/or 'all', comma-separated")
    args.k = [k if k == "all" else str(int(k)) for k in dict.fromkeys(args.k)]
    for name in ("draws", "steps", "batch_size", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if not (args.data / "manifest.csv").is_file():
        p.error(f"there is no manifest.csv in {args.data}")
    return args


def run_dataset(args: argparse.Namespace, dataset: str, rows: pd.DataFrame, csv_path: Path,
                done: set[tuple]) -> int:
    """Every (k, draw, head) training of one dataset not yet in the CSV; returns rows written."""
    classes = dataset_classes(rows)
    train_images = sorted(rows.loc[rows["split"] == "train", "image"].unique())
    test_images = sorted(rows.loc[rows["split"] == "test", "image"].unique())
    if not train_images or not test_images:
        tqdm.write(f"Skipped {dataset}: it needs both train and test images.")
        return 0
    plan = []
    for k_label in args.k:
        k = len(train_images) if k_label == "all" else int(k_label)
        if k > len(train_images):
            tqdm.write(f"Skipped {dataset} k={k}: it has only {len(train_images)} training images.")
            continue
        plan += [(k, k_label, draw, head) for draw in range(args.draws) for head in args.heads
                 if any((dataset, head, k_label, draw, c) not in done for c in classes)]
    if not plan:
        return 0
    needed = {img for k, _, draw, _ in plan for img in subset(train_images, k, dataset, draw)}
    rows = rows[rows["image"].isin(needed | set(test_images))]
    items = {it.name: it for it in load_items(args.data, rows, classes, load_model(ENCODER))}
    test = [items[i] for i in test_images]
    written = 0
    for k, k_label, draw, head in tqdm(plan, desc=dataset, unit="training", dynamic_ncols=True):
        start = time.perf_counter()
        model = train_head(head, [items[i] for i in subset(train_images, k, dataset, draw)], args.steps,
                           seed=draw, batch_size=args.batch_size)
        seconds = time.perf_counter() - start
        scores = evaluate(model, head, test)
        out = [{"dataset": dataset, "head": head, "k": k, "k_label": k_label, "draw": draw, "class": c,
                "n_test": len(test), "dice_mean": scores[:, j].mean(), "dice_std": pd.Series(scores[:, j]).std(),
                "train_seconds": round(seconds, 2), "steps": args.steps}
               for j, c in enumerate(classes) if (dataset, head, k_label, draw, c) not in done]
        append_rows(csv_path, out)
        written += len(out)
    return written


def save_heads(args: argparse.Namespace, dataset: str, rows: pd.DataFrame) -> list[Path]:
    """Each of ``args.heads`` trained on all of the dataset's training images (seed 0), saved."""
    classes = dataset_classes(rows)
    train = rows[rows["split"] == "train"]
    if train.empty:
        raise InputError(f"{dataset} has no training images.")
    items = load_items(args.data, train, classes, load_model(ENCODER))
    about = f"the {len(items)} training images of {dataset} ({args.steps} steps)"
    modality = str(rows["modality"].iloc[0]) if "modality" in rows else ""
    return [save_head(train_head(head, items, args.steps, batch_size=args.batch_size), head, classes,
                      args.save / f"{dataset}-{head}.pt", about, modality) for head in args.heads]


def run(args: argparse.Namespace, argv: Sequence[str]) -> None:
    manifest = pd.read_csv(args.data / "manifest.csv", dtype=str)
    if missing := [c for c in ("dataset_id", "object", "image", "mask", "split") if c not in manifest]:
        raise SystemExit(f"python -m medsam.finetune heads: manifest.csv lacks the column(s) {', '.join(missing)}.")
    if unknown := sorted(set(args.datasets) - set(manifest["dataset_id"])):
        raise SystemExit(f"python -m medsam.finetune heads: The manifest has no dataset '{unknown[0]}'.")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.save is not None:
        for dataset in args.datasets:
            for path in save_heads(args, dataset, manifest[manifest["dataset_id"] == dataset]):
                print(f"Saved {path}")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path = args.out / "label_efficiency.csv"
    done = done_keys(csv_path)
    start, t0, commit = datetime.now(UTC), time.perf_counter(), git_commit(args.out)
    written, completed = 0, False
    try:
        for dataset in args.datasets:
            written += run_dataset(args, dataset, manifest[manifest["dataset_id"] == dataset], csv_path, done)
        completed = True
    except KeyboardInterrupt:
        raise SystemExit("Interrupted; run the same command again to resume.") from None
    finally:
        record_run(args.out / "label_efficiency_provenance.json", {
            "command": command_line(["python", "-m", "medsam.finetune", "heads"], argv),
            "git_commit": commit,  # at the start
            "versions": versions(),
            "machine": {**machine(), "processor": platform.processor(), "torch_threads": torch.get_num_threads()},
            "options": {"datasets": args.datasets, "k": args.k, "draws": args.draws, "heads": args.heads,
                        "steps": args.steps, "batch_size": args.batch_size, "lr": LR, "encoder": ENCODER},
            "start": start.isoformat(timespec="seconds"),
            "end": datetime.now(UTC).isoformat(timespec="seconds"),
            "wall_s": round(time.perf_counter() - t0, 1), "completed": completed, "rows_written": written})
    print(f"Wrote {written} rows to {csv_path}.")


def main(argv: list[str] | None = None) -> None:
    """Entry point for ``python -m medsam.finetune heads``: ``argv`` is what follows ``heads``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        run(args, argv)
    except MedsamError as exc:
        raise SystemExit(f"python -m medsam.finetune heads: {exc}") from None
