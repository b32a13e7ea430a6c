"""Seconds per image for everything mode's 16x16 grid against the paths it replaces, in one run.

    python -m bench.everything [--model litemedsam_ft] [--grid 16] [--out results/everything.json]

On bundled images of five modalities, each path starts from the image (encoded again every time: no
cached embedding) and ends with the filtered, de-duplicated masks at the image size, with the
model's filters (``ModelSpec.everything``):

- ``grid``: ``automatic.generate``, the app's path: clicks through the click graph in batches of 16;
- ``batch64``: the app's path before it: the standard decoder graph in batches of 64 clicks;
- ``per_click``: the straightforward path through the public API, ``Predictor.predict`` one click at
  a time (each click's three candidates upscaled to the image size).

The paths run in turn on each image, so they share the machine's conditions. Prints seconds per
image (encode included) and the speed-ups, checks that the paths find the same masks, then times the
click graph alone for several batch sizes (``backends.GRID_BATCH``, set here for each one), and records
everything with the command, commit and machine to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from segment_anything.utils.amg import batched_mask_to_box, calculate_stability_score

from medsam import automatic, backends, load_model
from medsam.backends import default_threads
from medsam.imaging import load_rgb
from medsam.models import LOW_RES
from medsam.paths import REPO, command_line
from medsam.predictor import Embedding, EmbeddingCache, Predictor, Prompt
from medsam.results import git_commit

IMAGES = {"ct": "amos_0006_90.png", "mri": "msflair_113021.png", "ultrasound": "busi_malignant_17.png",
          "x-ray": "cxr_41182_2020_203_fig5_html.png", "octa": "octa500_10029.png"}


def finish(predictor: Predictor, emb: Embedding, logits: torch.Tensor, scores: torch.Tensor) -> list[np.ndarray]:
    """All clicks' candidates (N, 3, 256, 256), (N, 3) -> the model's filters, NMS, masks at the image size."""
    f = predictor.spec.everything
    crop = [int(np.ceil(s * LOW_RES / emb.geometry.input_size)) for s in emb.geometry.resized]
    logits, scores = logits.flatten(0, 1), scores.flatten()
    inside = logits[:, :crop[0], :crop[1]]
    stability = calculate_stability_score(inside, 0.0, 1.0)
    keep = ((inside > 0).flatten(1).any(1) & (stability >= f.stability)
            & (scores >= (-np.inf if f.pred_iou is None else f.pred_iou)))
    c = automatic.Candidates(logits[keep], scores[keep], stability[keep],
                             batched_mask_to_box(inside[keep] > 0).float(), automatic.Tally(0, 0, 0, 0, 0, 0))
    return [m for m in automatic.upscale(predictor, emb, c.logits[automatic.select(c, f)]) if m.any()]


def batch64(predictor: Predictor, emb: Embedding, grid: int) -> list[np.ndarray]:
    h, w = emb.geometry.original
    clicks = [Prompt(p[None], np.ones(1)) for p in automatic.grid_points(grid, h, w)]
    parts = [predictor.decode(clicks[i:i + 64], emb) for i in range(0, len(clicks), 64)]
    return finish(predictor, emb, torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))


def per_click(predictor: Predictor, emb: Embedding, grid: int) -> list[np.ndarray]:
    h, w = emb.geometry.original
    preds = [predictor.predict(points=p[None], labels=[1], embedding=emb) for p in automatic.grid_points(grid, h, w)]
    return finish(predictor, emb, torch.from_numpy(np.stack([p.logits for p in preds])),
                  torch.from_numpy(np.stack([p.scores for p in preds])))


def new(predictor: Predictor, emb: Embedding, grid: int) -> list[np.ndarray]:
    return [m.mask for m in automatic.generate(predictor, emb, grid).masks]


PATHS = {"grid": new, "batch64": batch64, "per_click": per_click}


def agreement(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Mean over ``a``'s masks of the best IoU with a mask of ``b`` (1.0 when both are empty)."""
    if not a or not b:
        return float(len(a) == len(b))
    return float(np.mean([max((m & n).sum() / (m | n).sum() for n in b) for m in a]))


def batch_sizes(predictor: Predictor, sizes: list[int], repeats: int = 3) -> dict[int, float]:
    """Milliseconds per click of the click graph alone (16x16 grid on the CT example), per batch size."""
    emb = predictor.set_image(load_rgb(REPO / "assets" / "examples" / "images" / IMAGES["ct"]))
    clicks = automatic.grid_points(16, *emb.geometry.original)
    engines = {}
    for size in sizes:  # each engine compiles its click graph for the batch size set at its first use
        backends.GRID_BATCH = size
        engines[size] = backends.make_engine(predictor.model, predictor.spec.input_size, predictor.backend)
        engines[size].decode_clicks(clicks[:size], emb)
    times: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(repeats):  # interleaved, so that every size sees the same conditions
        for size, engine in engines.items():
            backends.GRID_BATCH = size
            start = time.perf_counter()
            engine.decode_clicks(clicks, emb)
            times[size].append((time.perf_counter() - start) * 1e3 / len(clicks))
    return {size: round(float(np.median(t)), 1) for size, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="litemedsam_ft")
    parser.add_argument("--grid", type=int, default=16)
    parser.add_argument("--batches", default="8,16,32", help="click-graph batch sizes to time (empty: none)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "everything.json")
    args = parser.parse_args()
    shared = load_model(args.model)
    predictor = Predictor(shared.spec, shared.model, EmbeddingCache(0), backend=shared.backend)  # encodes every time
    warm = np.zeros((64, 64, 3), np.uint8)
    for run in PATHS.values():  # compile every graph before timing
        run(predictor, predictor.set_image(warm), 2)
    rows = []
    for modality, name in IMAGES.items():
        rgb = load_rgb(REPO / "assets" / "examples" / "images" / name)
        row: dict = {"modality": modality, "image": name, "size": list(rgb.shape[1::-1]), "seconds": {}, "masks": {}}
        found = {}
        for path, run in PATHS.items():
            start = time.perf_counter()
            emb = predictor.set_image(rgb)
            found[path] = run(predictor, emb, args.grid)
            row["seconds"][path] = round(time.perf_counter() - start, 2)
            row["masks"][path] = len(found[path])
        row["encode_s"] = round(emb.encode_ms / 1e3, 2)
        row["agreement_iou"] = {p: round(agreement(found["grid"], found[p]), 4) for p in ("batch64", "per_click")}
        rows.append(row)
        print(f"{modality:10s} {name:36s} " + "  ".join(f"{p} {s:5.1f} s" for p, s in row["seconds"].items())
              + f"  masks {row['masks']}", flush=True)
    median = {p: float(np.median([r["seconds"][p] for r in rows])) for p in PATHS}
    per_click_ms = batch_sizes(predictor, [int(b) for b in args.batches.split(",") if b])
    record = {"command": command_line(["python", "-m", "bench.everything"], sys.argv[1:]),
              "git_commit": git_commit(args.out.parent), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "threads": default_threads(),
                          "load_average_1min_at_end": round(os.getloadavg()[0], 2)},
              "model": args.model, "backend": predictor.engine.tag, "grid": args.grid,
              "filters": {"pred_iou": predictor.spec.everything.pred_iou,
                          "stability": predictor.spec.everything.stability},
              "median_seconds": median, "speedup": {p: round(median[p] / median["grid"], 2) for p in PATHS},
              "images": rows, "click_graph_ms_per_click_by_batch": per_click_ms}
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"median seconds per image ({args.grid}x{args.grid} grid, encode included): "
          + ", ".join(f"{p} {s:.1f}" for p, s in median.items())
          + f"; grid is {median['batch64'] / median['grid']:.1f}x faster than batch64 and "
          f"{median['per_click'] / median['grid']:.1f}x faster than per_click")
    if per_click_ms:
        print("click graph, ms per click by batch size: " + ", ".join(f"{b}: {ms}" for b, ms in per_click_ms.items()))


if __name__ == "__main__":
    main()
