"""Benchmark throughput on Ray (issue 9) beside the local engine, measured in one run.

    python -m bench.ray_throughput --data ../shared/datasets [--pairs 12] [--out results/ray_throughput.json]

Runs ``python -m medsam.benchmark`` (all strategies, the default backend) on the first ``--pairs``
pairs three ways, each in a fresh process with a fresh embedding cache (so every image is encoded,
as on new data): the local engine (one process, all cores), then ``--engine ray`` with 1 and with
``os.cpu_count()`` single-CPU workers on a local Ray instance (its start-up included). Prints pairs
per minute, per minute per worker, and checks that the three runs' DICE agree.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from medsam.paths import REPO, command_line
from medsam.results import git_commit
from medsam.settings import settings


def one_run(data: Path, pairs: int, extra: list[str]) -> tuple[float, pd.DataFrame, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "medsam.benchmark", "--data", str(data), "--out", f"{tmp}/out",
               "--limit", str(pairs), *extra]
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, capture_output=True,
                       env={**os.environ, "MEDSAM_CACHE": f"{tmp}/cache"})
        wall = time.perf_counter() - start
        rows = pd.read_csv(f"{tmp}/out/benchmark.csv")
        run = json.loads(Path(f"{tmp}/out/provenance.json").read_text())["runs"][-1]
    return wall, rows, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=settings().data)
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "ray_throughput.json")
    args = parser.parse_args()
    if args.data is None:
        parser.error("give --data (the benchmark folder) or set MEDSAM_DATA")
    cores = os.cpu_count() or 1
    configs = {"local": [], "ray_1_worker": ["--engine", "ray", "--workers", "1"],
               f"ray_{cores}_workers": ["--engine", "ray", "--workers", str(cores)]}
    fig: dict = {"command": command_line(["python", "-m", "bench.ray_throughput"], sys.argv[1:]),
                 "git_commit": git_commit(REPO / "results"),
                 "date": time.strftime("%Y-%m-%d"),
                 "machine": {"cpu": platform.processor() or platform.machine(), "cores": cores},
                 "pairs": args.pairs, "runs": {}}
    dice = {}
    for name, extra in configs.items():
        wall, rows, run = one_run(args.data, args.pairs, extra)
        workers = run["options"].get("workers") or 1
        rate = args.pairs / wall * 60
        fig["runs"][name] = {"wall_s": round(wall, 1), "rows": len(rows), "workers": workers,
                             "backend": run["options"]["backend"], "pairs_per_min": round(rate, 2),
                             "pairs_per_min_per_worker": round(rate / workers, 2),
                             "mean_dice": round(float(rows["dice"].mean()), 4)}
        dice[name] = rows.set_index(["model", "mask", "strategy", "seed"])["dice"].sort_index()
        print(f"{name}: {json.dumps(fig['runs'][name])}", flush=True)
    base = dice["local"]
    fig["max_abs_dice_difference_vs_local"] = {n: float((d - base).abs().max())
                                               for n, d in dice.items() if n != "local"}
    fig["speedup_vs_local"] = {n: round(fig["runs"]["local"]["wall_s"] / r["wall_s"], 2)
                               for n, r in fig["runs"].items() if n != "local"}
    print(f"max |DICE - local|: {json.dumps(fig['max_abs_dice_difference_vs_local'])}")
    print(f"speed-up vs local: {json.dumps(fig['speedup_vs_local'])}")
    args.out.write_text(json.dumps(fig, indent=2) + "\n")
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
