"""DICE of every bundled 2D example with its suggested box, per model, through the /segment code path.

    python -m bench.examples_dice [--models litemedsam,litemedsam_ft] [--out results/examples_dice.csv]

Writes one row per (model, example) and a ``.json`` beside it with the command, commit and date, and
prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from medsam.gallery import bundled_examples
from medsam.paths import REPO, command_line
from medsam.results import git_commit
from medsam.service import segment_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="litemedsam,litemedsam_ft")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "examples_dice.csv")
    args = parser.parse_args()
    rows = []
    for ex in bundled_examples():
        if ex.box is None:
            continue
        for model in args.models.split(","):
            _, info = segment_files(ex.image, {"box": list(ex.box)}, model, ex.mask)
            rows.append({"model": model, "modality": ex.modality, "image": ex.image.name, "object": ex.object,
                         "box": " ".join(map(str, ex.box)), "dice": info["dice"], "iou": info["iou"],
                         "hd95": info["hd95"]})
    table = pd.DataFrame(rows)
    table.to_csv(args.out, index=False)
    args.out.with_suffix(".json").write_text(json.dumps({
        "command": command_line(["python", "-m", "bench.examples_dice"], sys.argv[1:]),
        "git_commit": git_commit(args.out.parent), "date": time.strftime("%Y-%m-%d")}, indent=2) + "\n")
    wide = table.pivot_table(index=["modality", "image", "object"], columns="model", values="dice", sort=False)
    print("| example | " + " | ".join(wide.columns) + " |\n|---|" + "---|" * len(wide.columns))
    for (_, image, obj), values in wide.iterrows():
        print(f"| {obj.replace('_', ' ')} ({image}) | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    for model in wide.columns:
        n = (wide[model] >= 0.7).sum()
        print(f"{model}: {n} of {len(wide)} at DICE >= 0.7, mean {wide[model].mean():.3f}")


if __name__ == "__main__":
    main()
