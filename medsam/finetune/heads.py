"""Training AutoSAM-style prompt-free heads (``medsam.heads``) and the label-efficiency study.

Heads train on LiteMedSAM's frozen image features (from the disk cache) with a DICE + BCE loss per
class; a class without a mask on an image is absent (an empty target there, scored by BCE alone:
``dice_bce_loss``). The study:

    python -m medsam.finetune heads --data DIR --datasets hc18,kvasir_seg --k 1,2,4,8,all --draws 3
        --out results/ [--heads decoder,cnn,linear,unet] [--steps N] [--epochs E]
        [--decoder-start litemedsam|prior] [--batch-size B] [--threads T]

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
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..embeddings import features_for
from ..errors import InputError
from ..heads import (
    ENCODER,
    PREPROCESSING,
    PromptFreeDecoder,
    build_head,
    head_logits,
    heads_dir,
    save_head,
)
from ..imaging import load_mask, load_rgb
from ..metrics import dice
from ..models import Geometry
from ..precision import measured_precision
from ..predictor import Predictor, as_rgb, load_model
from .study import (
    DECODER_STARTS,
    append_rows,
    check_study_args,
    read_manifest,
    run_study,
    study_main,
    study_parser,
    subset,
    training_steps,
)

# Equal steps for every head, set by trials on hc18 and wbc_cellavision (k=4): with 80 steps, or
# the same compute in batches of 2, the decoder lagged; a cosine decay hurt; decoder lr 2e-3
# diverged. Seconds per training on one core: decoder ~27, unet ~22, cnn ~6, linear ~0.3; the
# default study (90 x 4 trainings, evaluation, encoding 184 images) is ~95 CPU-minutes.
STEPS = 100
BATCH_SIZE = 1
LR = {"decoder": 1e-3, "cnn": 1e-3, "linear": 1e-1, "unet": 3e-3}
PROG = "python -m medsam.finetune heads"
DATASETS = "hc18,kvasir_seg,camus_echo,ph2,wbc_cellavision,covid_cxr_lungs"
COLUMNS = ["dataset", "head", "k", "k_label", "draw", "class", "n_test", "dice_mean", "dice_std",
           "train_seconds", "steps"]


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


def features_model() -> Predictor:
    """The frozen encoder whose features the heads train on, in the precision of studies (f32 unless
    MEDSAM_PRECISION says otherwise: cached features must not depend on the CPU)."""
    return load_model(ENCODER, precision=measured_precision())


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
    """Soft DICE (per image and class, smoothed by 1) over the classes present on each image, plus
    binary cross-entropy over every pixel.

    An absent class (an empty target, e.g. a slice beyond the structure) is left to the
    cross-entropy: its soft DICE, 1 / (1 + predicted area), pulls every pixel down far harder than a
    small structure's DICE pulls its pixels up, and heads trained on volumes' slices then learned to
    predict nothing (msd_hippocampus, CNN head at k=2: 3D DICE 0.04; 0.28-0.39 without that term).
    Where every class is present (the 2D study's datasets) this is the plain mean over classes."""
    prob = logits.sigmoid()
    inter = (prob * target).sum((-2, -1))
    area = target.sum((-2, -1))
    soft_dice = (2 * inter + 1) / (prob.sum((-2, -1)) + area + 1)
    present = area > 0
    dice_term = (1 - soft_dice)[present].mean() if present.any() else logits.new_zeros(())
    return dice_term + F.binary_cross_entropy_with_logits(logits, target)


@torch.no_grad()
def start_at_prior(model: PromptFreeDecoder, items: Sequence[Item], sample: int = 32) -> list[float]:
    """Scale each class's starting logits down (``scale_logits``) so that their mean over ``sample``
    training images (evenly spaced) is the logit of the class's share of the training pixels (at
    least 0.1 %); returns the scales (1 where the mean is already above it).

    LiteMedSAM's prompt-less output, where the decoder starts, is about -13 everywhere. There the
    sigmoid's slope is ~2e-6 and the soft DICE term gives no gradient: on msd_hippocampus (3 % of a
    slice, 28 % of slices empty) a training never left "predict nothing" (k=20, draw 1: highest logit
    -3.7 after 1000 steps). Starting at the prior is the usual initialisation of a detector's output
    (Lin et al., focal loss); scaling rather than shifting keeps the starting output's shape. It
    cured that training; another (k=2, draw 0) then sat on a loss plateau until near its end, which
    a warm-up shortens (``heads3d.WARMUP``)."""
    prior = (sum(it.target.mean((1, 2)) for it in items) / len(items)).clamp(1e-3, 0.5)
    picks = [items[i] for i in np.linspace(0, len(items) - 1, min(sample, len(items))).round().astype(int)]
    start = torch.cat([model(_inputs("decoder", picks[i:i + 8])) for i in range(0, len(picks), 8)]).mean((0, 2, 3))
    goal = torch.logit(prior)
    scale = torch.where(start < goal, goal / start, torch.ones_like(start)).tolist()
    model.scale_logits(scale)
    return scale


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
               losses: list[float] | None = None, decoder_start: str = "litemedsam", warmup: int = 0) -> nn.Module:
    """Train a new head with AdamW on ``train_items`` (batches of min(batch_size, n) images) at a
    constant learning rate, reached by a linear ramp over the first ``warmup`` steps.

    Deterministic for a seed (initialisation and batch order). ``decoder`` starts from LiteMedSAM's
    decoder, with ``decoder_start="prior"`` its logits scaled to the class prior (``start_at_prior``);
    ``lr`` defaults to the head's ``LR``; each step's loss is appended to ``losses``.
    """
    if not train_items:
        raise InputError("There are no training images.")
    if decoder_start not in DECODER_STARTS:
        raise InputError(f"The decoder's start '{decoder_start}' is unknown; choose from {', '.join(DECODER_STARTS)}.")
    sam = features_model().model if kind == "decoder" else None  # built before seeding: it draws too
    torch.manual_seed(seed)
    model = build_head(kind, len(train_items[0].target), sam).train()
    if isinstance(model, PromptFreeDecoder) and decoder_start == "prior":
        start_at_prior(model, train_items)
    opt = torch.optim.AdamW(model.parameters(), lr=lr or LR[kind], weight_decay=weight_decay)
    ramp = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / max(warmup, 1)))
    gen = torch.Generator().manual_seed(seed)
    n = len(train_items)
    for idx in _batches(n, min(batch_size, n), steps, gen):  # stacked per batch: many items fit in memory
        batch = [train_items[i] for i in idx]
        loss = dice_bce_loss(model(_inputs(kind, batch)), torch.stack([it.target for it in batch]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ramp.step()
        if losses is not None:
            losses.append(loss.item())
    return model.eval()


def predict_items(model: nn.Module, kind: str, items: Sequence[Item], batch_size: int = 16) -> list[np.ndarray]:
    """The head's (C, H, W) bool masks at each item's original size; consecutive items of one
    geometry (the slices of a volume) go through the head together, up to ``batch_size`` at a time."""
    model.eval()
    masks: list[np.ndarray] = []
    start = 0
    while start < len(items):
        end = start + 1
        while end < len(items) and end - start < batch_size and items[end].geometry == items[start].geometry:
            end += 1
        logits = head_logits(model, _inputs(kind, items[start:end]), items[start].geometry)
        masks += list((logits > 0).numpy())
        start = end
    return masks


def evaluate(model: nn.Module, kind: str, test_items: Sequence[Item]) -> np.ndarray:
    """DICE at the original resolution, (n_images, C); 1.0 where a class is absent and not predicted."""
    scores = np.zeros((len(test_items), len(test_items[0].masks) if test_items else 0))
    for i, (pred, item) in enumerate(zip(predict_items(model, kind, test_items, batch_size=1), test_items)):
        scores[i] = [dice(p, g) for p, g in zip(pred, item.masks)]
    return scores


# --- the label-efficiency study -------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = study_parser(PROG, __doc__.split("\n")[0], DATASETS, STEPS, BATCH_SIZE, "images")
    p.add_argument("--save", nargs="?", type=Path, const=heads_dir(), metavar="FOLDER",
                   help=f"no study: train each head on all training images and save it (default {heads_dir()})")
    args = p.parse_args(argv)
    if args.out is None and args.save is None:
        p.error("give --out (the study's output folder) or --save")
    return check_study_args(p, args)


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
    items = {it.name: it for it in load_items(args.data, rows, classes, features_model())}
    test = [items[i] for i in test_images]
    written = 0
    for k, k_label, draw, head in tqdm(plan, desc=dataset, unit="training", dynamic_ncols=True):
        train = [items[i] for i in subset(train_images, k, dataset, draw)]
        steps = training_steps(args, len(train))
        start = time.perf_counter()
        model = train_head(head, train, steps, seed=draw, batch_size=args.batch_size,
                           decoder_start=args.decoder_start)
        seconds = time.perf_counter() - start
        scores = evaluate(model, head, test)
        out = [{"dataset": dataset, "head": head, "k": k, "k_label": k_label, "draw": draw, "class": c,
                "n_test": len(test), "dice_mean": scores[:, j].mean(), "dice_std": pd.Series(scores[:, j]).std(),
                "train_seconds": round(seconds, 2), "steps": steps}
               for j, c in enumerate(classes) if (dataset, head, k_label, draw, c) not in done]
        append_rows(csv_path, out, COLUMNS)
        written += len(out)
    return written


def save_heads(args: argparse.Namespace, dataset: str, rows: pd.DataFrame) -> list[Path]:
    """Each of ``args.heads`` trained on all of the dataset's training images (seed 0), saved."""
    classes = dataset_classes(rows)
    train = rows[rows["split"] == "train"]
    if train.empty:
        raise InputError(f"{dataset} has no training images.")
    items = load_items(args.data, train, classes, features_model())
    steps = training_steps(args, len(items))
    about = f"the {len(items)} training images of {dataset} ({steps} steps)"
    modality = str(rows["modality"].iloc[0]) if "modality" in rows else ""
    return [save_head(train_head(head, items, steps, batch_size=args.batch_size, decoder_start=args.decoder_start),
                      head, classes, args.save / f"{dataset}-{head}.pt", about, modality) for head in args.heads]


def run(args: argparse.Namespace, argv: Sequence[str]) -> None:
    manifest = read_manifest(args, ("dataset_id", "object", "image", "mask", "split"), PROG)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.save is not None:
        for dataset in args.datasets:
            for path in save_heads(args, dataset, manifest[manifest["dataset_id"] == dataset]):
                print(f"Saved {path}")
        return
    run_study(args, argv, PROG, "label_efficiency", manifest, run_dataset, lr=LR, encoder=ENCODER)


def main(argv: list[str] | None = None) -> None:
    """Entry point for ``python -m medsam.finetune heads``: ``argv`` is what follows ``heads``."""
    study_main(PROG, parse_args, run, argv)
