"""Calibrate a finetuned decoder's predicted IoU by retraining only its IoU head.

    python -m medsam.finetune calibrate --data DIR [--model litemedsam_ft] [--out FILE] [--results DIR]

The IoU prediction head (``mask_decoder.iou_prediction_head``, a 3-layer MLP on the decoder's IoU
token) is retrained with everything else frozen, so masks stay bit-identical and only their scores
change. Its inputs are computed once, with the frozen decoder, for the prompts the app and the
benchmark use on every target (each connected component of a mask, largest first, at most
MAX_COMPONENTS per mask): ``grid`` (up to GRID_CLICKS points of the 8x8 and 16x16 everything-mode
grids that fall inside the component), ``point_center``, ``point_random``, ``box``, ``box_jitter``
(edges moved 0-30 px) and ``box_point``. Each prompt gives four candidates (the single-mask output
and the three multimask ones), each with its true IoU against the component at the image size.

The head is trained on the ``split == train`` pairs (MSE against the true IoU, AdamW, warm-started
from the current head); its number of steps is chosen by Spearman's rho on a held-out fifth of the
training groups, then it is retrained on all training pairs. Draws are seeded per mask
(``rng_for``). ``<results>/iou_calibration.json`` reports, on the test split, before and after:
Spearman's rho and the mean absolute error between predicted and true IoU of the multimask
candidates (what the app shows and everything mode filters), pooled and per prompt kind, how often
the top-scored candidate is the truly best one and its mean true IoU; with the command and commit.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from ..automatic import grid_points
from ..checkpoints import resolve
from ..decoding import Embedding, Prompt, prompt_embeddings
from ..embeddings import features_for
from ..imaging import load_mask, load_rgb
from ..metrics import components
from ..paths import REPO, command_line, shown
from ..precision import measured_precision
from ..predictor import Predictor, load_model
from ..prompts import bbox, center_point, jitter_box, random_points, rng_for
from ..results import git_commit, machine, versions
from ..runner import read_manifest

KINDS = ("grid", "point_center", "point_random", "box", "box_jitter", "box_point")
MAX_COMPONENTS = 5
GRID_CLICKS = 3
HEAD = "mask_decoder.iou_prediction_head."
STEP_CHOICES = (0, 250, 500, 1000, 2000, 4000)


@dataclass
class Features:
    """The frozen decoder's view of many prompts: one row per prompt."""

    tokens: torch.Tensor  # (N, 256) IoU token, the head's input
    predicted: np.ndarray  # (N, 4) the current head's output
    true: np.ndarray  # (N, 4) true IoU of the four candidates against the target
    kind: np.ndarray  # (N,) prompt kind
    group: np.ndarray  # (N,) manifest group (patient/case) of the pair

    def subset(self, rows: np.ndarray) -> Features:
        return Features(self.tokens[rows], self.predicted[rows], self.true[rows], self.kind[rows], self.group[rows])


def target_prompts(component: np.ndarray, rng: np.random.Generator) -> list[tuple[str, Prompt]]:
    """The calibration prompts of one target component, in original pixels."""
    h, w = component.shape
    grid = np.unique(np.vstack([grid_points(8, h, w), grid_points(16, h, w)]), axis=0)
    inside = grid[component[grid[:, 1].astype(int), grid[:, 0].astype(int)]]
    clicks = inside[rng.choice(len(inside), min(GRID_CLICKS, len(inside)), replace=False)]
    box = bbox(component)
    centre = center_point(component)[0][None]
    one = np.ones(1)
    return ([("grid", Prompt(c[None], one)) for c in clicks] + [
        ("point_center", Prompt(centre, one)), ("point_random", Prompt(random_points(component, 1, rng), one)),
        ("box", Prompt(box=box)), ("box_jitter", Prompt(box=jitter_box(box, 0, 30, rng, component.shape)[0])),
        ("box_point", Prompt(centre, one, box))])


@torch.inference_mode()
def decode_all(model: torch.nn.Module, prompts: list[Prompt], emb: Embedding) -> tuple[torch.Tensor, ...]:
    """Prompts of one structure -> all four candidates' low-res logits (B, 4, 256, 256), the head's
    output (B, 4) and its input, the IoU token (B, 256)."""
    tokens: list[torch.Tensor] = []
    hook = model.mask_decoder.iou_prediction_head.register_forward_hook(lambda m, args, out: tokens.append(args[0]))
    try:
        sparse, dense = prompt_embeddings(model, prompts, emb)
        logits, iou = model.mask_decoder.predict_masks(emb.features, model.prompt_encoder.get_dense_pe(), sparse, dense)
    finally:
        hook.remove()
    return logits, iou, tokens[0]


def true_iou(predictor: Predictor, logits: torch.Tensor, emb: Embedding, target: np.ndarray) -> np.ndarray:
    """IoU of each candidate (B, C low-res logits) with ``target`` at the image size: (B, C)."""
    gt = torch.from_numpy(target)
    out = np.zeros(logits.shape[:2])
    for i in range(len(logits)):  # one prompt at a time: large images stay within memory
        masks = predictor.spec.preprocessing.upscale(logits[i:i + 1], emb.geometry)[0] > 0
        out[i] = ((masks & gt).sum((1, 2)) / (masks | gt).sum((1, 2))).numpy()
    return out


def _structure(kind: str) -> str:
    """The decoder-call structure of a calibration prompt kind: point, box or box_point."""
    return "box_point" if kind == "box_point" else "box" if kind.startswith("box") else "point"


def collect(predictor: Predictor, data: Path, rows: pd.DataFrame, seed: int = 0) -> Features:
    """Features of every calibration prompt of the given manifest rows."""
    parts: list[tuple] = []
    for row in tqdm(list(rows.itertuples()), desc=f"IoU features ({rows.split.iloc[0]})", unit="pair"):
        rgb = load_rgb(data / row.image)
        gt = load_mask(data / row.mask, rgb.shape[:2])
        if not gt.any():
            continue
        emb = features_for(predictor, rgb)
        rng = rng_for(seed, row.mask, "calibrate")
        for comp in components(gt, MAX_COMPONENTS):
            made = target_prompts(comp, rng)
            for structure in ("point", "box", "box_point"):
                group = [(k, p.checked(*gt.shape)) for k, p in made if structure == _structure(k)]
                logits, iou, tokens = decode_all(predictor.model, [p for _, p in group], emb)
                parts.append((tokens, iou.numpy(), true_iou(predictor, logits, emb, comp),
                              [k for k, _ in group], [row.group] * len(group)))
    tokens, predicted, true, kind, group = zip(*parts)
    return Features(torch.cat(tokens), np.concatenate(predicted), np.concatenate(true),
                    np.concatenate(kind), np.concatenate(group))


def train_head(head: torch.nn.Module, f: Features, steps: int, lr: float = 1e-3, seed: int = 0,
               batch_size: int = 256) -> torch.nn.Module:
    """A copy of ``head`` trained ``steps`` steps (MSE against the true IoU of all four candidates),
    its weights rounded to float16 as they are shipped."""
    torch.manual_seed(seed)
    head = copy.deepcopy(head).float().train().requires_grad_(True)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    target = torch.as_tensor(f.true, dtype=torch.float32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small MLP: more threads only add synchronisation (10x slower on 2 busy cores)
    try:
        for _ in range(steps):
            rows = torch.randint(len(f.tokens), (batch_size,))
            loss = torch.nn.functional.mse_loss(head(f.tokens[rows]), target[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    finally:
        torch.set_num_threads(threads)
    return head.eval().requires_grad_(False).half().float()


def scores(head: torch.nn.Module, f: Features) -> np.ndarray:
    with torch.inference_mode():
        return head(f.tokens).numpy()


def report(predicted: np.ndarray, f: Features) -> dict[str, float]:
    """Agreement of predicted with true IoU over the multimask candidates (outputs 1-3)."""
    p, t = predicted[:, 1:], f.true[:, 1:]
    top = np.argmax(p, 1)
    return {"prompts": len(p), "spearman_rho": float(spearmanr(p.ravel(), t.ravel()).statistic),
            "mae": float(np.abs(p - t).mean()), "top1_is_best": float((top == np.argmax(t, 1)).mean()),
            "top1_true_iou": float(t[np.arange(len(t)), top].mean()), "best_true_iou": float(t.max(1).mean())}


def choose_steps(head: torch.nn.Module, train: Features, seed: int) -> tuple[int, dict[int, float]]:
    """The step count with the best Spearman's rho on a held-out fifth of the training groups."""
    groups = np.unique(train.group)
    held = np.random.default_rng(seed).choice(groups, max(1, len(groups) // 5), replace=False)
    val = np.isin(train.group, held)
    fit, check = train.subset(~val), train.subset(val)
    rho = {s: report(scores(train_head(head, fit, s, seed=seed), check), check)["spearman_rho"] for s in STEP_CHOICES}
    return max(rho, key=lambda s: (rho[s], -s)), rho


def save_head(checkpoint: dict[str, torch.Tensor], head: torch.nn.Module, out: Path) -> dict[str, object]:
    """A decoder checkpoint with only the IoU head replaced (float16), written to ``out``; its size
    and sha256."""
    state = dict(checkpoint)
    for name, value in head.state_dict().items():
        state[HEAD + name] = value.half()
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out)
    return {"size": out.stat().st_size, "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m medsam.finetune calibrate", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="benchmark folder with manifest.csv")
    parser.add_argument("--model", default="litemedsam_ft", help="a finetuned decoder shipped as a checkpoint file")
    parser.add_argument("--out", type=Path, help="where to write the weights (default: over the model's own file)")
    parser.add_argument("--results", type=Path, default=REPO / "results")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="only the first N pairs of each split (quick runs)")
    args = parser.parse_args(argv)
    record = {"command": command_line(["python", "-m", "medsam.finetune", "calibrate"], argv or []),
              "git_commit": git_commit(args.results), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "versions": versions(),
              "machine": machine()}
    t0 = time.perf_counter()
    predictor = load_model(args.model, precision=measured_precision())
    source = resolve(predictor.spec.checkpoint)
    out = args.out or source
    manifest = read_manifest(args.data)
    splits = {s: manifest[manifest.split == s].head(args.limit or len(manifest)) for s in ("train", "test")}
    train, test = (collect(predictor, args.data, rows, args.seed) for rows in splits.values())
    head = predictor.model.mask_decoder.iou_prediction_head
    steps, val_rho = choose_steps(head, train, args.seed)
    new = train_head(head, train, steps, seed=args.seed)
    old = torch.load(source, weights_only=True)
    weights = save_head(old, new, out)
    saved = torch.load(out, weights_only=True)
    after = scores(new, test)
    record |= {
        "wall_s": round(time.perf_counter() - t0, 1), "model": args.model, "seed": args.seed, "kinds": list(KINDS),
        "max_components": MAX_COMPONENTS, "grid_clicks": GRID_CLICKS,
        "train": {"pairs": len(splits["train"]), "prompts": len(train.tokens)},
        "test": {"pairs": len(splits["test"]), "prompts": len(test.tokens)},
        "steps": steps, "validation_rho_by_steps": val_rho,
        "test_before": report(test.predicted, test), "test_after": report(after, test),
        "test_by_kind": {k: {"before": report(test.predicted[test.kind == k], test.subset(test.kind == k)),
                             "after": report(after[test.kind == k], test.subset(test.kind == k))} for k in KINDS},
        "weights": {"file": shown(out), **weights},
        "changed_tensors": sorted(k for k in saved if not torch.equal(saved[k], old[k])),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "iou_calibration.json").write_text(json.dumps(record, indent=2) + "\n")
    trained = out.with_suffix(".json")
    if trained.is_file():
        info = json.loads(trained.read_text())
        info["iou_head"] = {k: record[k] for k in ("command", "date", "steps", "test_before", "test_after")}
        trained.write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("steps", "test_before", "test_after", "weights")}, indent=2))
