"""The benchmark on Ray (``python -m medsam.benchmark ... --engine ray [--address ADDR]``).

The same work as the local engine, spread over Ray actors: the pairs still to do are cut into blocks
of whole images; each actor holds one loaded model (one GPU per actor where the cluster has GPUs,
``--cpus-per-worker`` CPUs otherwise), encodes each image of a block once and runs every strategy
on it with the local engine's ``PairRunner``, so rows are identical. The driver writes each finished
block as a parquet shard under ``<out>/ray-shards/`` and, when all blocks are done, folds the shards
into ``<out>/benchmark.csv``. A crashed actor is restarted and its block retried (``MAX_RETRIES``),
as is a block that hit an ``OSError`` (e.g. a network file system); a block that still fails is
reported and redone by the next run, which skips everything already in shards or in the CSV.

Workers read images from ``--data`` at the same path on every node (shared storage) and need medsam
and its requirements installed (or the repository on ``PYTHONPATH``). Ray is optional: nothing else
in medsam imports it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from .errors import MedsamError
from .precision import measured_precision
from .predictor import load_model
from .results import COLUMNS, KEY, append_rows
from .runner import Outcome, PairRunner, Plan
from .settings import settings

SHARD_DIR = "ray-shards"
MAX_RETRIES = 2  # actor restarts, and retries of a block whose actor died or raised OSError
REPO = Path(__file__).resolve().parents[1]


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MedsamError("Ray is not installed: pip install -r requirements-ray.txt, "
                          "or leave out --engine ray to run locally.") from None
    return ray


# --- shards (no Ray needed) -----------------------------------------------------------------


def shard_files(out: Path) -> list[Path]:
    """Finished block shards not yet folded into benchmark.csv."""
    return sorted((out / SHARD_DIR).glob("*.parquet"))


def fold_shards(out: Path) -> int:
    """Append the shards' rows that benchmark.csv lacks to it, then delete the shards; returns rows added."""
    paths = shard_files(out)
    if not paths:
        return 0
    rows = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True).drop_duplicates(KEY)
    csv = out / "benchmark.csv"
    if csv.is_file() and csv.stat().st_size:
        have = pd.read_csv(csv, usecols=KEY, dtype={"seed": int})
        rows = rows.merge(have, on=KEY, how="left", indicator=True)
        rows = rows[rows.pop("_merge") == "left_only"]
    if len(rows):
        append_rows(csv, rows.to_dict("records"))
    for path in paths:
        path.unlink()
    return len(rows)


def _write_shard(out: Path, name: str, rows: list[dict]) -> None:
    folder = out / SHARD_DIR
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.parquet.tmp"
    pd.DataFrame(rows, columns=COLUMNS).to_parquet(tmp, index=False)
    os.replace(tmp, folder / f"{name}.parquet")  # a shard is either whole or absent


# --- blocks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """Pairs of whole images for one model, with the (strategy, seed) units each still needs."""

    model: str
    pairs: tuple[tuple[dict, tuple[tuple[str, int], ...]], ...]

    @property
    def name(self) -> str:
        """Stable across runs for the same work: the shard's file name."""
        text = json.dumps([self.model, [(p["mask"], todo) for p, todo in self.pairs]])
        return f"{self.model}-{hashlib.sha1(text.encode()).hexdigest()[:16]}"


def make_blocks(plan: Plan, images_per_block: int) -> list[Block]:
    """Regroup the local engine's plan (pass, model, [(pair, todo)]) into per-model blocks: each
    pair's units of all passes together (one encode per image), ``images_per_block`` images each."""
    per_model: dict[str, dict[str, tuple[dict, list]]] = {}
    for _, model, work in plan:
        pairs = per_model.setdefault(model, {})
        for pair, todo in work:
            pairs.setdefault(pair["mask"], (pair.to_dict(), []))[1].extend(todo)
    blocks = []
    for model, pairs in per_model.items():
        by_image: dict[str, list] = {}
        for pair, todo in pairs.values():
            by_image.setdefault(pair["image"], []).append((pair, tuple(todo)))
        images = list(by_image.values())
        for i in range(0, len(images), images_per_block):
            blocks.append(Block(model, tuple(p for img in images[i:i + images_per_block] for p in img)))
    return blocks


class BlockWorker:
    """A Ray actor's state: one loaded model and a ``PairRunner`` over the data folder."""

    def __init__(self, model: str, backend: str, device: str, data: str, grid: int,
                 threads: int | None, precision: str) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.predictor = load_model(model, device=device, backend=backend, threads=threads, precision=precision)
        self.runner = PairRunner(self.predictor, Path(data), grid, {})

    def engine_tag(self) -> str:
        return self.predictor.engine.tag

    def run_block(self, pairs: Sequence[tuple[dict, Sequence[tuple[str, int]]]]) -> tuple[list[dict], list[str]]:
        """Rows of every pair, and 'mask: reason' for pairs that were bad input (skipped, as locally)."""
        rows, failed = [], []
        for pair, todo in pairs:
            try:
                rows += self.runner.run(pair, list(todo))
            except MedsamError as exc:
                failed.append(f"{pair['mask']}: {exc}")
        return rows, failed


# --- the driver -----------------------------------------------------------------------------


def _start(ray: Any, address: str | None) -> None:
    if ray.is_initialized():
        return
    # A new local instance gets this checkout on its workers' path; a cluster's nodes have medsam installed.
    env = None if address else {"env_vars": {"PYTHONPATH": os.pathsep.join((str(REPO), *settings().python_path))}}
    ray.init(address=address, runtime_env=env, include_dashboard=False, log_to_driver=False)


def worker_resources(ray: Any, args: argparse.Namespace) -> tuple[int, dict, str]:
    """(workers, actor resources, device): one GPU each where the cluster has GPUs, else CPUs;
    never more actors than the cluster can place (extra ones would wait forever)."""
    total = ray.cluster_resources()
    if gpus := int(total.get("GPU", 0)):
        return min(args.workers or gpus, gpus), {"num_gpus": 1, "num_cpus": 1}, "cuda"
    fit = int(total.get("CPU", 0)) // args.cpus_per_worker
    if not fit:
        raise MedsamError(f"The Ray cluster has {total.get('CPU', 0):g} CPUs, fewer than --cpus-per-worker "
                          f"{args.cpus_per_worker}.")
    return min(args.workers or fit, fit), {"num_cpus": args.cpus_per_worker}, "cpu"


def run_blocks(plan: Plan, args: argparse.Namespace) -> Outcome:
    """Run the plan on Ray; every finished block is written to a shard as it arrives.

    Args:
        plan: from ``medsam.runner.make_plan``.
        args: the benchmark's options (``out``, ``data``, ``grid``, ``backend``, ``address``,
            ``workers``, ``cpus_per_worker``, ``block_size``).

    Returns:
        What ran (blocks that failed are counted in ``failed_blocks`` and redone by the next run).
    """
    ray = _ray()
    _start(ray, args.address)
    workers, resources, device = worker_resources(ray, args)
    done = {p.stem for p in shard_files(args.out)}
    blocks = [b for b in make_blocks(plan, args.block_size) if b.name not in done]
    outcome = Outcome()
    actor_class = ray.remote(max_restarts=MAX_RETRIES, max_task_retries=MAX_RETRIES, **resources)(BlockWorker)
    threads = None if device == "cuda" else resources["num_cpus"]
    backend, precision = args.backend or settings().backend, measured_precision()  # the driver's, for every actor
    engines: set[str] = set()
    for model in dict.fromkeys(b.model for b in blocks):
        todo = [b for b in blocks if b.model == model]
        actors = [actor_class.remote(model, backend, device, str(args.data.resolve()), args.grid, threads, precision)
                  for _ in range(min(workers, len(todo)))]
        outcome.workers = max(outcome.workers, len(actors))
        idle = _run_model_blocks(ray, actors, todo, args.out, outcome)
        engines.update(ray.get([a.engine_tag.remote() for a in idle]))
        for actor in actors:
            ray.kill(actor)
    outcome.engines = tuple(sorted(engines))
    return outcome


def _run_model_blocks(ray: Any, actors: list, todo: list[Block], out: Path, outcome: Outcome) -> list:
    """Hand one model's blocks to its actors as they free up, write each result as a shard and count
    it in ``outcome``; returns the actors still alive."""
    bar = tqdm(total=sum(len(b.pairs) for b in todo), desc=f"{todo[0].model} ray ({len(actors)} workers)",
               unit="pair", dynamic_ncols=True)
    pending: dict[Any, tuple[Any, Block]] = {}
    idle = list(actors)
    while todo or pending:
        while idle and todo:
            actor, block = idle.pop(), todo.pop(0)
            ref = actor.run_block.options(retry_exceptions=[OSError]).remote(block.pairs)
            pending[ref] = (actor, block)
        if not pending:  # every actor is gone: the rest waits for the next run
            outcome.failed_blocks += len(todo)
            break
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        actor, block = pending.pop(ref)
        try:
            rows, failed = ray.get(ref)
        except ray.exceptions.RayError as exc:
            outcome.failed_blocks += 1
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            tqdm.write(f"A block of {len(block.pairs)} pairs failed after {MAX_RETRIES} retries ({reason}); "
                       "the next run redoes it.")
            if not isinstance(exc, ray.exceptions.RayActorError):
                idle.append(actor)
        else:
            _write_shard(out, block.name, rows)
            for reason in failed:
                tqdm.write(f"Skipped {reason}")
            outcome.rows += len(rows)
            outcome.pairs += len(block.pairs) - len(failed)
            outcome.failed_pairs += len(failed)
            idle.append(actor)
        bar.update(len(block.pairs))
    bar.close()
    return idle
