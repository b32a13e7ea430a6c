"""AutoSAM's own protocol in 3D: prompt-free heads (``medsam.heads``) trained on the axial slices of
k labelled volumes, all of a dataset's classes at once, and scored per test volume in 3D.

    python -m medsam.finetune heads3d --data VOLUMES --out results/ [--datasets msd_hippocampus]
        [--k 1,2,4,8,all] [--draws 3] [--heads decoder,cnn,linear,unet] [--steps N] [--epochs E]
        [--decoder-start prior|litemedsam] [--batch-size B] [--threads T]

Conventions:

- ``VOLUMES``: a volumes folder (``manifest.csv``, one row per volume and object, ``label`` a label
  volume on the image's grid, ``label_value`` the values that make up the object, ``split``).
- Classes: the dataset's objects, sorted, less any object that is exactly the union of others
  (msd_hippocampus: ``hippocampus`` = anterior + posterior is left out; its classes are
  ``hippocampus_anterior`` = 1 and ``hippocampus_posterior`` = 2).
- Slices: volumes are loaded with ``load_scan`` (RAS+); a slice is an axial view (axis 2), its
  picture what the app shows (``Scan.render`` through the volume's default window: for MR one
  percentile window over the whole volume), its class masks ``Scan.view`` of the label volume.
- Training: every axial slice of the k volumes, those holding neither class too (empty targets; on
  msd_hippocampus 28% of the slices). A head segments every slice of a test volume and must leave
  those empty; a labelled volume says as much where the structure is not as where it is. Training
  on the labelled slices alone would teach the heads that every slice holds both classes and cost
  3D DICE through false positives beyond the structure's ends. An empty target is scored by the
  cross-entropy alone (``heads.dice_bce_loss``): with a DICE term too, heads learned to predict
  nothing.
- Draws: draw d of k volumes is ``study.subset`` (nested, seeded by dataset and draw); training is
  ``heads.train_head`` (seed d), the same steps for every head: ``--steps``, or ``--epochs`` passes
  over the k volumes' slices where that is more (``study.training_steps``). The decoder starts at
  the class prior (``heads.start_at_prior``; the 2D study's default starts it at LiteMedSAM's
  output) and its learning rate ramps up over its first ``WARMUP`` steps.
- Scoring: each test slice is predicted by the head (``heads.predict_items``), the masks are put
  back into the volume (``Scan.unview``), and each class is scored per test volume with 3D DICE and
  NSD at 2 mm (``metrics.volume_scores``, voxel spacing from ``Scan.spacing``).

Output: one row per (dataset, head, k, draw, class) in ``<out>/label_efficiency3d.csv`` (``COLUMNS``:
mean and SD over the test volumes; rows already there are skipped) and a run record in
``<out>/label_efficiency3d_provenance.json``. The heads' inputs come from the disk cache of
LiteMedSAM features (``make_item``): a rerun encodes nothing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import InputError
from ..heads import ENCODER
from ..imaging import load_scan
from ..metrics import volume_scores
from ..predictor import Predictor
from ..scan import Scan
from .heads import BATCH_SIZE, LR, Item, features_model, make_item, predict_items, train_head
from .study import (
    append_rows,
    check_study_args,
    read_manifest,
    run_study,
    study_main,
    study_parser,
    subset,
    training_steps,
)

PROG = "python -m medsam.finetune heads3d"
AXIS = 2  # axial in RAS+
# 300 steps (the 2D study's regime, ~9 passes over one volume's slices) left the decoder and the
# U-Net predicting nothing at k=1: the hippocampus covers ~3 % of a slice. One slice alone is fitted
# in ~35 steps, so the heads need more passes: at least 1000 steps. With 1000 steps for every k, a
# training at k=20 (704 slices) saw each slice about once, and the U-Net was starved (3D DICE 0.10
# there; 0.49 with 3000 steps), hence at least 5 passes. Seconds per 1000 steps on 2 cores: decoder
# ~220, U-Net ~150, CNN ~45, linear ~4.
STEPS = 1000
EPOCHS = 5
# From the class prior at the full learning rate, the decoder's loss sat on a plateau (~0.83) for
# ~800 of 1000 steps at k=2, draw 0: whether it left it before the end decided between 3D DICE 0.40
# and "predict nothing" (0.00 in the study, 0.40 in a rerun of the same training). Ramping the
# learning rate up over the first 100 steps, the usual start for a pretrained transformer, let it
# leave by ~300 steps (final loss 0.31 vs 0.58; DICE 0.46). The heads trained from scratch need none.
WARMUP = {"decoder": 100}
COLUMNS = ["dataset", "head", "k", "k_label", "draw", "class", "n_test", "dice_mean", "dice_std", "nsd_mean",
           "nsd_std", "train_slices", "train_seconds", "steps"]
MANIFEST_COLUMNS = ("dataset_id", "object", "image", "label", "label_value", "split")


# --- volumes and slices ---------------------------------------------------------------------


def volume_classes(rows: pd.DataFrame) -> dict[str, tuple[int, ...]]:
    """A dataset's classes and their label values: its objects, sorted, less those whose values are
    exactly the union of two or more other objects' values (a whole made of parts)."""
    values = {str(obj): tuple(sorted(int(v) for v in str(lv).split(",")))
              for obj, lv in rows.drop_duplicates("object")[["object", "label_value"]].itertuples(index=False)}

    def is_union(obj: str) -> bool:
        parts = [set(v) for o, v in values.items() if o != obj and set(v) < set(values[obj])]
        return len(parts) > 1 and set().union(*parts) == set(values[obj])

    return {obj: v for obj, v in sorted(values.items()) if not is_union(obj)}


def load_volume(data: Path, image: str, label: str, classes: dict[str, tuple[int, ...]]) -> tuple[Scan, np.ndarray]:
    """The image volume and its (C, X, Y, Z) bool class masks, both in RAS+."""
    scan = load_scan(data / image)
    labels = load_scan(data / label).data
    if not scan.is_volume or labels.shape != scan.data.shape:
        raise InputError(f"The label volume {label} is not on the grid of the image {image}.")
    return scan, np.stack([np.isin(labels, values) for values in classes.values()])


def volume_items(scan: Scan, masks: np.ndarray, predictor: Predictor, name: str) -> list[Item]:
    """One item per axial slice: the picture the app shows and the slice's class masks."""
    return [make_item(scan.render(scan.default_window, AXIS, i), np.stack([scan.view(m, AXIS, i) for m in masks]),
                      predictor, f"{name}#{i}") for i in range(scan.n_slices(AXIS))]


def stack_slices(scan: Scan, planes: Sequence[np.ndarray]) -> np.ndarray:
    """(C, H, W) masks of the axial slices in order, as (C, X, Y, Z) masks on the volume's grid."""
    out = np.zeros((len(planes[0]), *scan.data.shape), bool)
    for i, plane in enumerate(planes):
        for c, mask in enumerate(plane):
            np.moveaxis(out[c], AXIS, 0)[i] = scan.unview(mask)
    return out


def score_volume(model: nn.Module, kind: str, scan: Scan, items: Sequence[Item], masks: np.ndarray) -> np.ndarray:
    """(C, 2): 3D DICE and NSD at 2 mm of each class of the head's slice-by-slice segmentation."""
    pred = stack_slices(scan, predict_items(model, kind, items))
    scores = [volume_scores(p, g, scan.spacing, nsd_tolerance=2.0) for p, g in zip(pred, masks)]
    return np.array([[s["dice3d"], s["nsd"]] for s in scores])


# --- the study ------------------------------------------------------------------------------


def plan_trainings(args: argparse.Namespace, dataset: str, train: Sequence[str], classes: Sequence[str],
                   done: set[tuple]) -> dict[tuple[int, str, int], list[str]]:
    """(k, k_label, draw) -> the heads whose rows are not all in the CSV yet."""
    plan: dict[tuple[int, str, int], list[str]] = {}
    for k_label in args.k:
        k = len(train) if k_label == "all" else int(k_label)
        if k > len(train):
            tqdm.write(f"Skipped {dataset} k={k}: it has only {len(train)} training volumes.")
            continue
        for draw in range(args.draws):
            heads = [h for h in args.heads if any((dataset, h, k_label, draw, c) not in done for c in classes)]
            if heads:
                plan[(k, k_label, draw)] = heads
    return plan


def score_test_volumes(data: Path, volumes: pd.DataFrame, test: Sequence[str], classes: dict[str, tuple[int, ...]],
                models: dict[str, nn.Module], predictor: Predictor) -> dict[str, np.ndarray]:
    """Head -> (n_test, C, 2) scores; one test volume in memory at a time."""
    scores: dict[str, list[np.ndarray]] = {head: [] for head in models}
    for image in tqdm(test, desc="test volumes", unit="volume", leave=False):
        scan, masks = load_volume(data, image, volumes.loc[image, "label"], classes)
        items = volume_items(scan, masks, predictor, image)
        for head, model in models.items():
            scores[head].append(score_volume(model, head, scan, items, masks))
    return {head: np.stack(s) for head, s in scores.items()}


def run_dataset(args: argparse.Namespace, dataset: str, rows: pd.DataFrame, csv_path: Path,
                done: set[tuple]) -> int:
    """Every (k, draw, head) training of one dataset not yet in the CSV; returns rows written."""
    classes = volume_classes(rows)
    volumes = rows.drop_duplicates("image").set_index("image")
    train, test = (sorted(volumes.index[volumes["split"] == s]) for s in ("train", "test"))
    if not train or not test or not classes:
        tqdm.write(f"Skipped {dataset}: it needs train and test volumes and a class.")
        return 0
    plan = plan_trainings(args, dataset, train, list(classes), done)
    if not plan:
        return 0
    predictor = features_model()
    needed = sorted({v for k, _, draw in plan for v in subset(train, k, dataset, draw)})
    slices = {v: volume_items(*load_volume(args.data, v, volumes.loc[v, "label"], classes), predictor, v)
              for v in tqdm(needed, desc="training volumes", unit="volume", leave=False)}
    written = 0
    for (k, k_label, draw), heads in tqdm(plan.items(), desc=dataset, unit="draw", dynamic_ncols=True):
        items = [it for v in subset(train, k, dataset, draw) for it in slices[v]]
        models, seconds = {}, {}
        steps = training_steps(args, len(items))
        for head in heads:
            start = time.perf_counter()
            models[head] = train_head(head, items, steps, seed=draw, batch_size=args.batch_size,
                                      decoder_start=args.decoder_start, warmup=WARMUP.get(head, 0))
            seconds[head] = time.perf_counter() - start
        scores = score_test_volumes(args.data, volumes, test, classes, models, predictor)
        out = [{"dataset": dataset, "head": head, "k": k, "k_label": k_label, "draw": draw, "class": c,
                "n_test": len(test), "dice_mean": s[:, j, 0].mean(), "dice_std": pd.Series(s[:, j, 0]).std(),
                "nsd_mean": s[:, j, 1].mean(), "nsd_std": pd.Series(s[:, j, 1]).std(), "train_slices": len(items),
                "train_seconds": round(seconds[head], 2), "steps": steps}
               for head, s in scores.items() for j, c in enumerate(classes)
               if (dataset, head, k_label, draw, c) not in done]
        append_rows(csv_path, out, COLUMNS)
        written += len(out)
    return written


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = study_parser(PROG, __doc__.split("\n")[0], "msd_hippocampus", STEPS, BATCH_SIZE, "volumes", EPOCHS, "prior")
    args = p.parse_args(argv)
    if args.out is None:
        p.error("give --out, the study's output folder")
    return check_study_args(p, args)


def run(args: argparse.Namespace, argv: Sequence[str]) -> None:
    manifest = read_manifest(args, MANIFEST_COLUMNS, PROG)
    if args.threads:
        torch.set_num_threads(args.threads)
    run_study(args, argv, PROG, "label_efficiency3d", manifest, run_dataset, lr=LR, warmup=WARMUP, encoder=ENCODER,
              features=features_model().embedding_name, axis=AXIS, slices="all")


def main(argv: list[str] | None = None) -> None:
    """Entry point for ``python -m medsam.finetune heads3d``: ``argv`` is what follows ``heads3d``."""
    study_main(PROG, parse_args, run, argv)
