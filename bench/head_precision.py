"""The shipped prompt-free heads on features computed in f32 (as they were trained) and in bf16 (what the
app's default ``MEDSAM_PRECISION=auto`` computes on CPUs with native bfloat16).

    python -m bench.head_precision --data ../shared/datasets [--split test] [--out FILE]

For each head in ``medsam/weights/heads``: mean DICE per class over the split's images of the dataset
it was trained on, with OpenVINO f32 and bf16 features, their difference, and how far the two
precisions' masks agree (mean IoU of f32 vs bf16 masks). Features come from the embedding disk cache
(one per precision). Writes ``results/head_precision.json``; refuses to run where the app's default
is f32 (no native bfloat16: OpenVINO then computes a bf16 request in f32, so both would agree).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from medsam.finetune.heads import dataset_classes, load_items
from medsam.heads import SHIPPED_HEADS, SavedHead, head_logits, load_head
from medsam.metrics import dice, iou
from medsam.paths import REPO, command_line
from medsam.precision import resolve_precision
from medsam.predictor import load_model
from medsam.results import git_commit
from medsam.runner import read_manifest
from medsam.settings import settings

PRECISIONS = ("f32", "bf16")


def head_masks(model: torch.nn.Module, items: list) -> list[np.ndarray]:
    """(C, H, W) bool masks of a feature head for each item."""
    with torch.no_grad():
        return [(head_logits(model, it.features[None], it.geometry)[0] > 0).numpy() for it in items]


def head_report(head: SavedHead, items: dict[str, list]) -> dict:
    """One head's DICE per precision and class, their difference, and the f32 vs bf16 mask agreement."""
    truth = [it.masks for it in items["f32"]]
    masks = {p: head_masks(head.model, items[p]) for p in PRECISIONS}
    scores = {p: {c: round(float(np.mean([dice(m[i], t[i]) for m, t in zip(masks[p], truth)])), 4)
                  for i, c in enumerate(head.classes)} for p in PRECISIONS}
    agreement = [iou(a[i], b[i]) for a, b in zip(masks["f32"], masks["bf16"]) for i in range(len(head.classes))]
    return {"images": len(truth), "mean_dice": scores,
            "bf16_minus_f32": {c: round(scores["bf16"][c] - scores["f32"][c], 4) for c in head.classes},
            "mask_iou_f32_vs_bf16": round(float(np.mean(agreement)), 4)}


def compare(data: Path, split: str) -> dict[str, dict]:
    """Every shipped head's report; each dataset's images are read and encoded once per precision."""
    manifest = read_manifest(data)
    heads = {path.stem: load_head(path) for path in sorted(SHIPPED_HEADS.glob("*-*.pt"))}
    report: dict[str, dict] = {}
    for dataset in sorted({name.rsplit("-", 1)[0] for name in heads}):
        rows = manifest[manifest["dataset_id"] == dataset]
        classes = dataset_classes(rows)
        items = {p: load_items(data, rows[rows["split"] == split], classes,
                               load_model("litemedsam", backend="openvino", precision=p)) for p in PRECISIONS}
        for name, head in heads.items():
            if name.rsplit("-", 1)[0] != dataset:
                continue
            if head.classes != classes:
                raise SystemExit(f"{name}: its classes {head.classes} are not {dataset}'s.")
            report[name] = head_report(head, items)
            print(name, json.dumps(report[name]), flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=settings().data)
    parser.add_argument("--split", default="test", choices=("train", "test"))
    parser.add_argument("--out", type=Path, default=REPO / "results" / "head_precision.json")
    args = parser.parse_args()
    if args.data is None:
        parser.error("give --data (the benchmark folder) or set MEDSAM_DATA")
    if resolve_precision("auto") != "bf16":
        raise SystemExit("On this CPU the app computes features in f32, as the heads were trained (OpenVINO "
                         "ignores a bf16 hint without native bfloat16): nothing to compare. Run this on a CPU "
                         "with AVX512-BF16 or AMX.")
    report = {"command": command_line(["python", "-m", "bench.head_precision"], sys.argv[1:]),
              "git_commit": git_commit(REPO / "results"), "split": args.split,
              "heads": compare(args.data, args.split)}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
