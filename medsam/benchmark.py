"""Benchmark runner: every prompt strategy on every image/mask pair of a manifest-layout folder.

    python -m medsam.benchmark --data DIR --models litemedsam --out results/ [--strategies a,b]
        [--seeds 3] [--grid 8] [--limit N] [--shard i/n]
    python -m medsam.benchmark --out results/ --merge
    python -m medsam.benchmark --data DIR --out results/ --engine ray [--address ADDR] [--workers N]

One CSV row per (model, pair, strategy, seed), appended to ``<out>/benchmark.csv`` (or
``benchmark.shard-i-of-n.csv``) as each pair finishes; rows already there are skipped, so an
interrupted run resumes where it stopped. Each run appends its record to ``<out>/provenance.json``.
This module is the command line; the work and its order are ``medsam.runner`` (pass by pass,
round-robin over datasets), the files and row columns ``medsam.results``, and ``--engine ray`` runs
the same work on Ray actors (``medsam.distributed``), giving the same rows.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from . import distributed
from .errors import MedsamError
from .models import REGISTRY
from .paths import command_line
from .results import done_keys, git_commit, machine, merge, output_paths, record_run, versions, write_summary
from .runner import DEFAULT_GRID, Outcome, Plan, make_plan, read_manifest, run_local, select_pairs
from .strategies import STRATEGIES


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one plain sentence, no usage dump
        raise SystemExit(f"medsam.benchmark: {message[0].upper()}{message[1:].rstrip('.')}.")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The checked options (``--help`` lists them); a bad one exits with one plain sentence."""
    p = _Parser(prog="python -m medsam.benchmark", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, help="folder with manifest.csv and the images/masks it names")
    p.add_argument("--out", type=Path, required=True, help="output folder (created; resumed if present)")
    p.add_argument("--models", default="litemedsam", help="comma-separated model names")
    p.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated strategies (default: all)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 for random strategies (default 3)")
    p.add_argument("--grid", type=int, default=DEFAULT_GRID,
                   help=f"points per side for 'everything' (default {DEFAULT_GRID}: CPU cost; COSMOS used 32)")
    p.add_argument("--split", choices=["train", "test"], help="only pairs of this manifest split")
    p.add_argument("--limit", type=int, help="only the first N pairs (round-robin over datasets)")
    p.add_argument("--shard", help="i/n: run the i-th of n disjoint parts of the pairs (by image)")
    p.add_argument("--backend", help="inference backend: auto (default: MEDSAM_BACKEND, else the fastest "
                   "installed), openvino, onnxruntime or torch; masks agree (see bench/perf.py and "
                   "bench/backend_parity.py)")
    p.add_argument("--report", action="store_true",
                   help="print the per-strategy means, best/worst box targets and descriptor correlations of "
                        "--out's benchmark.csv and exit")
    p.add_argument("--merge", action="store_true", help="merge shard outputs into benchmark.csv and exit")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local (this process) or ray (actors on a Ray instance; pip install -r requirements-ray.txt)")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    p.add_argument("--workers", type=int, help="Ray actors (default: one per GPU, else CPUs / --cpus-per-worker)")
    p.add_argument("--cpus-per-worker", type=int, default=1, help="CPUs (and threads) per Ray actor without GPUs")
    p.add_argument("--block-size", type=int, default=4, help="images per Ray task (default 4)")
    args = p.parse_args(argv)
    args.models = _names(args.models, REGISTRY, "model")
    args.strategies = [s for s in STRATEGIES if s in _names(args.strategies, STRATEGIES, "strategy")]
    for name, low in (("seeds", 1), ("grid", 1), ("limit", 1), ("workers", 1), ("cpus_per_worker", 1),
                      ("block_size", 1)):
        if getattr(args, name) is not None and getattr(args, name) < low:
            p.error(f"--{name.replace('_', '-')} must be at least {low}")
    args.shard = _shard(args.shard) if args.shard else None
    if args.engine == "ray" and args.shard:
        p.error("--shard is for splitting local runs; --engine ray splits the work itself")
    if args.out.exists() and not args.out.is_dir():
        p.error(f"the output path {args.out} is a file, not a folder")
    if not (args.merge or args.report):
        if args.data is None:
            p.error("--data is required (the folder holding manifest.csv)")
        if not args.data.is_dir():
            p.error(f"the data folder {args.data} does not exist")
        if not (args.data / "manifest.csv").is_file():
            p.error(f"there is no manifest.csv in {args.data}")
    return args


def _names(text: str, known: Iterable[str], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise SystemExit(f"medsam.benchmark: Unknown {what} '{unknown[0] if unknown else text}'; "
                         f"choose from {', '.join(known)}.")
    return names


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        i = n = 0
    if not 1 <= i <= n:
        raise SystemExit(f"medsam.benchmark: --shard must be i/n with 1 <= i <= n (e.g. 1/4), not '{text}'.")
    return i, n


# --- a run ---------------------------------------------------------------------------------


def run(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """Run what the options select and is not yet in ``--out``, then record the run.

    Args:
        args: from ``parse_args``.
        argv: the command line, for the run record.

    Raises:
        SystemExit: on Ctrl-C (after recording the run; the next run resumes).
        MedsamError: e.g. a model whose checkpoint is not on this machine (after recording the run).
    """
    pairs = select_pairs(read_manifest(args.data), args.limit, args.shard, args.split)
    csv_path, prov_path = output_paths(args.out, args.shard)
    args.out.mkdir(parents=True, exist_ok=True)
    shards = distributed.shard_files(args.out)  # blocks a Ray run finished but did not fold in
    done = done_keys({args.out / "benchmark.csv", csv_path, *shards})
    plan = make_plan(pairs, args.models, args.strategies, args.seeds, done)
    if not plan:
        if shards:
            print(f"Folded {distributed.fold_shards(args.out)} rows of finished Ray blocks into {csv_path}.")
        print(f"Nothing to do: all {len(pairs)} pairs are done in {csv_path}.")
        if not args.shard:
            write_summary(args.out)
        return
    start, t0, commit = datetime.now(UTC), time.perf_counter(), git_commit(args.out)
    outcome: Outcome | None = None
    try:
        outcome = execute(plan, args, csv_path)
        if outcome.stopped:
            raise outcome.stopped
    except KeyboardInterrupt:
        raise SystemExit("Interrupted; run the same command again to resume.") from None
    finally:
        record_run(prov_path, run_record(args, argv, outcome, commit, start, time.perf_counter() - t0))
        if not args.shard:
            write_summary(args.out)
    failed = outcome.failed_pairs
    print(f"Wrote {outcome.rows} rows for {outcome.pairs} pairs to {csv_path}"
          + (f"; {failed} pairs failed (see above) and will be retried next run." if failed else "."))
    if args.shard:
        print("When all shards are finished, run with --out and --merge to build benchmark.csv.")


def execute(plan: Plan, args: argparse.Namespace, csv_path: Path) -> Outcome:
    """The plan on the chosen engine; Ray's finished blocks are folded into benchmark.csv."""
    if args.engine == "local":
        return run_local(plan, args.data, args.grid, args.backend, csv_path)
    outcome = distributed.run_blocks(plan, args)
    distributed.fold_shards(args.out)
    if outcome.failed_blocks:
        print(f"{outcome.failed_blocks} block(s) failed (see above); run the same command again to redo them.")
    return outcome


def run_record(args: argparse.Namespace, argv: Sequence[str], outcome: Outcome | None, commit: str,
               start: datetime, wall_s: float) -> dict:
    """A run's provenance record; ``outcome`` is None when the engine itself failed."""
    done = outcome or Outcome()
    options: dict = {"engine": args.engine}
    if args.engine == "ray":
        options |= {"workers": done.workers, "address": args.address, "cpus_per_worker": args.cpus_per_worker,
                    "block_size": args.block_size}
    return {
        "command": command_line(["python", "-m", "medsam.benchmark"], argv),
        "git_commit": commit,  # at the start
        "versions": versions(), "machine": machine(),
        "options": {"models": args.models, "strategies": args.strategies, "seeds": args.seeds,
                    "grid": args.grid, "limit": args.limit, "split": args.split,
                    "shard": "/".join(map(str, args.shard)) if args.shard else None,
                    "backend": list(done.engines), **options},
        "start": start.isoformat(timespec="seconds"),
        "end": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_s": round(wall_s, 1), "completed": outcome is not None and outcome.completed,
        "pairs_done": done.pairs, "rows_written": done.rows, "pairs_failed": done.failed_pairs}


def merge_shards(out: Path) -> None:
    """``--merge``: fold shard outputs into benchmark.csv (see ``medsam.results.merge``)."""
    shards, rows = merge(out)
    if not shards:
        raise SystemExit(f"medsam.benchmark: There are no shard files (benchmark.shard-i-of-n.csv) in {out}.")
    print(f"Merged {shards} shard file(s) into {out / 'benchmark.csv'} ({rows} rows).")


def print_report(out: Path, models: Sequence[str]) -> None:
    """Print ``dashboard.report`` for each model of ``out/benchmark.csv``."""
    from .dashboard import report

    path = out / "benchmark.csv"
    if not path.is_file():
        raise SystemExit(f"medsam.benchmark: There is no benchmark.csv in {out}.")
    df = pd.read_csv(path)
    print("\n\n".join(report(df, m) for m in models))


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point (``python -m medsam.benchmark``, ``medsam-benchmark``).

    Args:
        argv: the options (default: ``sys.argv[1:]``); see ``parse_args`` or ``--help``.

    Raises:
        SystemExit: bad input, or an error during the run, as one plain sentence.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if threading.current_thread() is threading.main_thread():  # `kill` stops as cleanly as Ctrl-C
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.merge:
            merge_shards(args.out)
        elif args.report:
            print_report(args.out, args.models)
        else:
            run(args, argv)
    except MedsamError as exc:  # e.g. a model whose checkpoint is not on this machine
        raise SystemExit(f"medsam.benchmark: {exc}") from None


if __name__ == "__main__":
    main()
