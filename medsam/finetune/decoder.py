"""Finetune LiteMedSAM's prompt encoder and mask decoder on its frozen image encoder.

COSMOS (finding 8) shows task finetuning raises SAM's DICE; LiteMedSAM in particular was trained
with boxes only, so single clicks give near-empty masks. This trains the two small prompt-side
modules (about 4M parameters) on the benchmark's ``split == train`` pairs, with the prompts the
benchmark uses and the corrective clicks an interactive user makes:

- a target is one connected component (up to 20 per mask) or, for interactive prompting, the whole mask;
- prompts: a box jittered by 0-30 px per edge; 1-10 points (positives inside the target, negatives in
  the 2x box outside the ground truth); a box plus points; and, for a third of the samples, a
  simulated corrective click at the largest error region of a first prediction, whose logits are
  fed back as the mask input (as in SAM's own interactive training);
- loss: DICE + BCE on the decoder's 256 x 256 logits, the best of the three candidates for
  ambiguous single-point prompts (SAM's multimask loss), plus an MSE term that teaches the IoU head
  the true IoU of each candidate, so the candidate the model itself ranks first is worth showing.

Image embeddings come from the disk cache (``medsam.embeddings``), computed once per image.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..decoding import Embedding, Prompt, decode_prompts
from ..embeddings import features_for
from ..imaging import load_mask, load_rgb
from ..metrics import components
from ..models import REGISTRY, build_model
from ..paths import command_line
from ..precision import measured_precision
from ..predictor import Predictor, load_model
from ..prompts import bbox, corrective_click, jitter_box, negative_points, random_points
from ..results import machine, versions

TRAINED_KEYS = ("prompt_encoder.", "mask_decoder.")


@dataclass
class Target:
    """One training target: an image embedding and a mask (a component or the whole ground truth)."""

    emb: Embedding
    mask: np.ndarray  # (H, W) bool at the original size
    gt: np.ndarray  # the whole ground truth: negatives avoid it
    low_res: torch.Tensor  # (1, 1, 256, 256) float target on the decoder's grid


def low_res_target(mask: np.ndarray, emb: Embedding, size: int = 256) -> torch.Tensor:
    """The mask as the decoder sees it: resized like the image (longest side), padded, at 256 px."""
    geo = emb.geometry
    scale = size / geo.input_size
    h, w = round(geo.resized[0] * scale), round(geo.resized[1] * scale)
    small = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    out = np.zeros((size, size), np.float32)
    out[:h, :w] = small
    return torch.from_numpy(out)[None, None]


def load_targets(predictor: Predictor, data: Path, rows: pd.DataFrame,
                 max_components: int = 20) -> list[list[Target]]:
    """Targets per manifest row: every component (largest first, capped) and the whole mask."""
    targets = []
    for row in tqdm(list(rows.itertuples()), desc="targets", unit="pair"):
        rgb = load_rgb(data / row.image)
        gt = load_mask(data / row.mask, rgb.shape[:2])
        emb = features_for(predictor, rgb)
        parts = components(gt, max_components)
        targets.append([Target(emb, m, gt, low_res_target(m, emb)) for m in parts + ([gt] if len(parts) > 1 else [])])
    return targets


def sample_prompt(t: Target, rng: np.random.Generator) -> tuple[np.ndarray | None, np.ndarray | None,
                                                                  np.ndarray | None]:
    """A random training prompt (points, labels, box) in original pixels."""
    kind = rng.choice(["box", "points", "box_points"], p=[0.3, 0.45, 0.25])
    box = None
    if kind != "points":
        low, high = [(0, 0), (0, 10), (10, 20), (20, 30)][rng.integers(4)]
        box = jitter_box(bbox(t.mask), low, high, rng, t.mask.shape)[0] if high else bbox(t.mask)
    if kind == "box":
        return None, None, box
    n_pos = int(rng.integers(1, 6))
    n_neg = int(rng.integers(0, 6)) if kind == "points" and rng.random() < 0.5 else 0
    pos = random_points(t.mask, n_pos, rng)
    neg = negative_points(t.mask, n_neg, rng, t.gt) if n_neg else np.empty((0, 2))
    return np.concatenate([pos, neg]), np.r_[np.ones(len(pos)), np.zeros(len(neg))], box


def _decode(model: torch.nn.Module, emb: Embedding, points: np.ndarray | None, labels: np.ndarray | None,
            box: np.ndarray | None, mask_input: torch.Tensor | None,
            multimask: bool) -> tuple[torch.Tensor, torch.Tensor]:
    mask = None if mask_input is None else mask_input[0, 0].detach().numpy()
    return decode_prompts(model, [Prompt(points, labels, box, mask, multimask)], emb)


def _losses(logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-candidate DICE + BCE + IoU-head MSE, shape (C,)."""
    prob = torch.sigmoid(logits[0])
    tgt = target[0].expand_as(prob)
    inter = (prob * tgt).sum((1, 2))
    dice = 1 - (2 * inter + 1) / (prob.sum((1, 2)) + tgt.sum((1, 2)) + 1)
    bce = F.binary_cross_entropy_with_logits(logits[0], tgt, reduction="none").mean((1, 2))
    hard = (logits[0] > 0).float()
    true_iou = (hard * tgt).sum((1, 2)) / ((hard + tgt).clamp(max=1).sum((1, 2)) + 1e-6)
    return dice + bce + F.mse_loss(iou_pred[0], true_iou.detach(), reduction="none")


def train_step(model: torch.nn.Module, batch: list[Target], rng: np.random.Generator,
               corrective: float = 1 / 3) -> torch.Tensor:
    """Mean loss over one batch of targets, each with a random prompt (and maybe a correction)."""
    losses = []
    for t in batch:
        points, labels, box = sample_prompt(t, rng)
        mask_input = None
        if rng.random() < corrective:  # a first answer, then the click a user would add to fix it
            with torch.no_grad():
                first, _ = _decode(model, t.emb, points, labels, box, None, False)
            click = corrective_click(_at_original_size(first, t.emb)[0, 0].numpy() > 0, t.mask)
            if click is not None:
                points = click[0][None] if points is None else np.vstack([points, click[0]])
                labels = np.array([click[1]], float) if labels is None else np.r_[labels, click[1]]
                mask_input = first
        multimask = box is None and points is not None and len(points) == 1
        logits, iou_pred = _decode(model, t.emb, points, labels, box, mask_input, multimask)
        losses.append(_losses(logits, iou_pred, t.low_res).min())
    return torch.stack(losses).mean()


def _at_original_size(logits: torch.Tensor, emb: Embedding) -> torch.Tensor:
    return REGISTRY["litemedsam"].preprocessing.upscale(logits, emb.geometry)


def trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Freeze the image encoder; return the prompt encoder's and mask decoder's parameters."""
    params = []
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith(TRAINED_KEYS)
        if p.requires_grad:
            params.append(p)
    return params


def finetune(model: torch.nn.Module, targets: list[list[Target]], steps: int, batch_size: int = 8,
             lr: float = 3e-4, seed: int = 0) -> list[float]:
    """Train in place with AdamW and a cosine schedule; returns the loss of every step.

    Each batch draws pairs uniformly, then one target of each, so masks with many components
    (nuclei, vessels) do not outweigh the rest.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = trainable(model)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    model.train()
    history = []
    for _ in (bar := tqdm(range(steps), desc="finetune decoder", unit="step")):
        pairs = rng.choice(len(targets), size=min(batch_size, len(targets)), replace=False)
        batch = [targets[i][rng.integers(len(targets[i]))] for i in pairs]
        loss = train_step(model, batch, rng)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        history.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(history[-20:]):.3f}")
    model.eval()
    for p in model.parameters():
        p.requires_grad = False
    return history


def save_decoder(model: torch.nn.Module, path: Path) -> Path:
    """The trained modules only, in float16 (about 8 MB): loads with ``weights_only=True``."""
    state = {k: v.half() for k, v in model.state_dict().items() if k.startswith(TRAINED_KEYS)}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def main(argv: list[str] | None = None) -> None:
    """``python -m medsam.finetune decoder --data DIR [--datasets a,b] [--steps N] --out FILE``."""
    import argparse

    from ..runner import read_manifest

    parser = argparse.ArgumentParser(prog="python -m medsam.finetune decoder", description=main.__doc__)
    parser.add_argument("--data", type=Path, required=True, help="benchmark folder with manifest.csv")
    parser.add_argument("--datasets", help="comma-separated dataset ids (default: all, pooled)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="use only the first N training pairs (quick runs)")
    parser.add_argument("--out", type=Path, default=Path("medsam/weights/litemedsam_ft.pt"))
    args = parser.parse_args(argv)
    manifest = read_manifest(args.data)
    rows = manifest[manifest.split == "train"]
    if args.datasets:
        wanted = args.datasets.split(",")
        unknown = set(wanted) - set(manifest.dataset_id)
        if unknown:
            raise SystemExit(f"Unknown dataset(s): {', '.join(sorted(unknown))}.")
        rows = rows[rows.dataset_id.isin(wanted)]
    if args.limit:
        rows = rows.head(args.limit)
    predictor = load_model("litemedsam", precision=measured_precision())
    start = time.perf_counter()
    targets = load_targets(predictor, args.data, rows)
    prep_s = time.perf_counter() - start
    model = build_model(REGISTRY["litemedsam"])  # a fresh copy: the shared predictor stays as shipped
    history = finetune(model, targets, args.steps, args.batch_size, args.lr, args.seed)
    train_s = time.perf_counter() - start - prep_s
    save_decoder(model, args.out)
    record = {
        "command": command_line(["python", "-m", "medsam.finetune", "decoder"], argv or []),
        "train_pairs": len(rows), "train_targets": sum(map(len, targets)),
        "datasets": sorted(rows.dataset_id.unique()), "steps": args.steps, "batch_size": args.batch_size,
        "lr": args.lr, "seed": args.seed, "features_seconds": round(prep_s, 1), "train_seconds": round(train_s, 1),
        "loss_first_20": float(np.mean(history[:20])), "loss_last_20": float(np.mean(history[-20:])),
        "versions": versions(),
        "machine": machine(),
        "weights": str(args.out), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
