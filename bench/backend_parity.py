"""Backend parity on the whole benchmark: box and point_center DICE per backend, against eager PyTorch.

    python -m bench.backend_parity --data ../shared/datasets [--model litemedsam] [--limit N]
        [--split test] [--strategies box,point_center] [--variants torch,openvino-bf16]
        [--reference torch] [--out FILE]

Runs ``medsam.benchmark`` with each backend (and OpenVINO in bfloat16) into ``--work`` (resumable;
default ``~/.cache/medsam/parity``), then prints and writes ``results/backend_parity.json``: mean
DICE per backend and strategy and its difference from the reference, eager PyTorch by default
(issue 7 asks for at most 0.005; ``--reference openvino`` compares against OpenVINO f32, which gives
eager's means to 4 decimals on all pairs, and reuses its cached embeddings). Mask-for-mask
agreement on real images is checked by ``tests/test_backends.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from medsam.paths import REPO, command_line
from medsam.results import git_commit
from medsam.settings import settings

VARIANTS = {"torch": ("torch", "f32"), "onnxruntime": ("onnxruntime", "f32"),
            "openvino": ("openvino", "f32"), "openvino-bf16": ("openvino", "bf16")}
STRATEGIES = "box,point_center"
TOLERANCE = 0.005


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=settings().data)
    parser.add_argument("--model", default="litemedsam")
    parser.add_argument("--limit", type=int, help="only the first N pairs")
    parser.add_argument("--split", choices=("train", "test"), help="only pairs of this manifest split")
    parser.add_argument("--strategies", default=STRATEGIES, help=f"benchmark strategies (default {STRATEGIES})")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"subset of {','.join(VARIANTS)}")
    parser.add_argument("--reference", default="torch", choices=list(VARIANTS), help="the variant compared against")
    parser.add_argument("--work", type=Path, default=Path("~/.cache/medsam/parity").expanduser())
    parser.add_argument("--out", type=Path, default=REPO / "results" / "backend_parity.json")
    args = parser.parse_args()
    if args.data is None:
        parser.error("give --data (the benchmark folder) or set MEDSAM_DATA")
    variants = args.variants.split(",")
    if args.reference not in variants or not set(variants) <= set(VARIANTS):
        parser.error(f"--variants must include the reference ({args.reference}) and be among {', '.join(VARIANTS)}")
    means, counts = {}, {}
    for variant in variants:
        backend, precision = VARIANTS[variant]
        out = args.work / args.model / (f"{variant}-{args.split}" if args.split else variant)
        cmd = [sys.executable, "-m", "medsam.benchmark", "--data", str(args.data), "--out", str(out),
               "--models", args.model, "--strategies", args.strategies, "--backend", backend]
        if args.limit:
            cmd += ["--limit", str(args.limit)]
        if args.split:
            cmd += ["--split", args.split]
        print(f"{variant}: {' '.join(cmd[1:])}", flush=True)
        subprocess.run(cmd, cwd=REPO, check=True, env={**os.environ, "MEDSAM_PRECISION": precision})
        rows = pd.read_csv(out / "benchmark.csv")
        means[variant] = rows.groupby("strategy")["dice"].mean().round(4).to_dict()
        counts[variant] = int(rows["mask"].nunique())
    report = {
        "command": command_line(["python", "-m", "bench.backend_parity"], sys.argv[1:]), "model": args.model,
        "git_commit": git_commit(REPO / "results"),
        "pairs": counts, "mean_dice": means, "tolerance": TOLERANCE, "reference": args.reference,
        "difference": {v: {s: round(m[s] - means[args.reference][s], 4) for s in m} for v, m in means.items()},
    }
    report["within_tolerance"] = {v: all(abs(d) <= TOLERANCE for d in diff.values())
                                  for v, diff in report["difference"].items()}
    print(json.dumps(report, indent=2))
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
