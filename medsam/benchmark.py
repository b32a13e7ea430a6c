"""Benchmark runner: every prompt strategy on every image/mask pair of a manifest-layout folder.

    python -m medsam.benchmark --data DIR --models litemedsam --out results/ [--strategies a,b]
        [--seeds 3] [--grid 8] [--limit N] [--shard i/n]
    python -m medsam.benchmark --out results/ --merge
    python -m medsam.benchmark --data DIR --out results/ --engine ray [--address ADDR] [--workers N]

One CSV row per (model, pair, strategy, seed), appended to ``<out>/benchmark.csv`` (or
``benchmark.shard-i-of-n.csv``) as each pair finishes; rows already there are skipped, so an
interrupted run resumes where it stopped. Work runs in three passes over all pairs (one image encode
per pair and pass): first the cheap point/box strategies, then ``interactive``, then ``everything``,
so a run cut short still holds the main results for every pair. Pairs are visited round-robin over
datasets (the pairs of one image together), so a partial or ``--limit`` run spans the datasets.
The prompts of one strategy and seed on an image go to ``predict_batch`` together, at most
``DECODE_BATCH`` per call; automatic masks are made once per image and grid. ``--engine ray`` runs
the same work on Ray actors (see ``medsam.distributed``) and gives the same rows.

Row columns beyond the manifest's (dataset = dataset_id):
- ``dice``: the deployable mask, i.e. per component the candidate the model scores highest, union;
  ``iou``, ``hd95`` (px; inf when the prediction is empty) and ``nsd`` (2 px) are of that mask too.
- ``dice_oracle``: per component the candidate with the best DICE against that component, union,
  then DICE against the whole ground truth (the COSMOS code's choice).
- ``n_components``: all 8-connected components; ``n_prompted``: how many (largest first, at most 20)
  were prompted separately (empty for ``interactive`` and ``everything``, which take the whole mask).
- ``center_fallback``: number of prompted components whose centroid fell outside them (so the
  interior point was clicked instead); ``jitter_frac``: mean over components of
  mean |edge shift| / mean(box width, height).
- ``interactive``: ``dice_per_click`` (JSON list, at most 10; stops early when the mask is exact),
  ``noc85`` / ``noc90``; its dice/iou/hd95 are those after the last click.
- ``everything``: ``n_masks`` automatic masks (the model's filters, ``ModelSpec.everything``);
  dice = dice_oracle = the best DICE among them (the ground truth is matched to its best mask; 0 when
  there are none).
- ``multimask``: whether the decoder returned 3 candidates (interactive: on the first click only).
- ``encode_ms`` (image encoder, even when the embedding came from the cache), ``decode_ms`` (all
  decoder calls of the row; for ``everything`` the image's whole mask generation, even when a pair
  on the same image made it) and ``wall_ms`` (the row's prompts, decoding and metrics, no encoding).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from . import __version__, distributed
from .automatic import generate
from .embeddings import features_for
from .errors import MedsamError
from .imaging import load_mask, load_rgb
from .metrics import components, dice, noc, segmentation_scores, target_descriptors
from .models import REGISTRY
from .paths import command_line
from .predictor import Embedding, Predictor, load_model
from .interactive import MAX_CLICKS, simulate
from .prompts import STRATEGIES, make_prompt, rng_for

KEY = ["model", "mask", "strategy", "seed"]
PAIR_COLUMNS = ["dataset", "modality", "object", "image", "mask", "group", "split"]
COLUMNS = ["model", *PAIR_COLUMNS, "strategy", "seed", "multimask", "n_components", "n_prompted",
           "dice", "dice_oracle", "iou", "hd95", "nsd", "center_fallback", "jitter_frac",
           "dice_per_click", "noc85", "noc90", "n_masks", "boundary_complexity",
           "intensity_difference", "relative_size", "encode_ms", "decode_ms", "wall_ms"]
MANIFEST_COLUMNS = ["dataset_id", "modality", "object", "image", "mask", "group", "split"]
# A first pass of one-prompt strategies over all pairs, then the slow ones.
PASSES = [("point/box", ("prompt",)), ("interactive", ("interactive",)), ("everything", ("everything",))]
MAX_COMPONENTS = 20
# Prompts per decoder call. On CPU the decoder costs ~55-65 ms per prompt in batches of 1-8 but
# ~100 ms in batches of 16 or more (LiteMedSAM, 2 cores), so larger batches are split.
DECODE_BATCH = 8
# 8x8 = 64 grid points per image for CPU cost (the app uses 16x16); COSMOS used 32x32 (1024 points).
DEFAULT_GRID = 8
REPO = Path(__file__).resolve().parents[1]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one plain sentence, no usage dump
        raise SystemExit(f"medsam.benchmark: {message[0].upper()}{message[1:].rstrip('.')}.")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
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
                   "installed), openvino, onnxruntime or torch; masks agree (see bench/perf.py and bench/backend_parity.py)")
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


# --- pairs and work -------------------------------------------------------------------------


def read_manifest(data: Path) -> pd.DataFrame:
    """The manifest's pairs in run order: round-robin over datasets, the pairs of one image together.

    Adds ``image_no``, the image's position in that order (what ``--shard`` splits on).
    """
    try:
        m = pd.read_csv(data / "manifest.csv", dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        raise SystemExit(f"medsam.benchmark: {data / 'manifest.csv'} is not a readable CSV file.") from None
    missing = [c for c in MANIFEST_COLUMNS if c not in m.columns]
    if missing:
        raise SystemExit(f"medsam.benchmark: manifest.csv lacks the column(s) {', '.join(missing)}.")
    rank = m.groupby("dataset_id", sort=False)["image"].transform(lambda s: pd.factorize(s)[0])
    m = m.assign(_rank=rank, _pos=np.arange(len(m))).sort_values(["_rank", "_pos"], kind="stable")
    m["image_no"] = pd.factorize(m["image"])[0]
    return m.drop(columns=["_rank", "_pos"]).reset_index(drop=True)


def select_pairs(m: pd.DataFrame, limit: int | None, shard: tuple[int, int] | None,
                 split: str | None = None) -> pd.DataFrame:
    """``--split``, ``--limit`` (first N in run order), then ``--shard`` i/n (image_no % n == i-1)."""
    if split:
        m = m[m["split"] == split]
    if limit:
        m = m.head(limit)
    if shard:
        m = m[m["image_no"] % shard[1] == shard[0] - 1]
    return m


def units(strategies: Sequence[str], seeds: int) -> list[tuple[str, int]]:
    """(strategy, seed) pairs: seeds 0..seeds-1 for random strategies, seed 0 for the others."""
    return [(s, k) for s in strategies for k in range(seeds if STRATEGIES[s].random else 1)]


def output_paths(out: Path, shard: tuple[int, int] | None) -> tuple[Path, Path]:
    """The CSV rows go to and the provenance file of a run."""
    tag = f".shard-{shard[0]}-of-{shard[1]}" if shard else ""
    return out / f"benchmark{tag}.csv", out / f"provenance{tag}.json"


def _repair_tail(path: Path) -> None:
    """Drop a half-written last line (a run killed mid-write) so the CSV parses and resumes."""
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


def done_keys(paths: Iterable[Path]) -> set[tuple[str, str, str, int]]:
    """Keys (model, mask, strategy, seed) of the rows already in the given CSVs or parquet shards."""
    done: set[tuple[str, str, str, int]] = set()
    for path in paths:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path, columns=KEY).astype({"seed": int})
        elif path.is_file() and path.stat().st_size:
            _repair_tail(path)
            df = pd.read_csv(path, usecols=KEY, dtype={"model": str, "mask": str, "strategy": str, "seed": int})
        else:
            continue
        done.update(df.itertuples(index=False, name=None))
    return done


def append_rows(path: Path, rows: list[dict]) -> None:
    """Append rows in COLUMNS order with one write, flushed to disk."""
    header = not path.is_file() or path.stat().st_size == 0
    text = pd.DataFrame(rows, columns=COLUMNS).to_csv(index=False, header=header)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


# --- one pair -------------------------------------------------------------------------------


class PairRunner:
    """Runs strategies on pairs with one model; caches target descriptors and the last image's
    automatic masks (pairs sharing an image reuse them)."""

    def __init__(self, predictor: Predictor, data: Path, grid: int,
                 descriptors: dict[str, dict[str, float]]) -> None:
        self.predictor = predictor
        self.data = data
        self.grid = grid
        self.descriptors = descriptors
        self._auto: tuple[str, list, float] | None = None

    def run(self, pair: pd.Series, todo: Sequence[tuple[str, int]]) -> list[dict]:
        """Rows for ``todo`` (strategy, seed) on one pair, encoding its image once."""
        rgb = load_rgb(self.data / pair["image"])
        gt = load_mask(self.data / pair["mask"], rgb.shape[:2])
        if not gt.any():
            raise MedsamError("The mask is empty.")
        if pair["mask"] not in self.descriptors:
            self.descriptors[pair["mask"]] = target_descriptors(rgb, gt)
        emb = features_for(self.predictor, rgb)  # disk-cached: later runs and training reuse it
        comps = components(gt, MAX_COMPONENTS)
        base = {"model": self.predictor.name, "dataset": pair["dataset_id"],
                **{c: pair[c] for c in PAIR_COLUMNS[1:]}, **self.descriptors[pair["mask"]],
                "encode_ms": emb.encode_ms, "multimask": True}
        rows = []
        for strategy, seed in todo:
            start = time.perf_counter()
            kind = STRATEGIES[strategy].kind
            if kind == "prompt":
                rng = rng_for(seed, pair["mask"], strategy)
                row = self.prompted(strategy, emb, gt, comps, rng)
            elif kind == "interactive":
                row = self.interactive(emb, gt, comps[0])
            else:
                row = self.everything(emb, gt)
            rows.append({**base, **row, "strategy": strategy, "seed": seed,
                         "wall_ms": (time.perf_counter() - start) * 1e3})
        return rows

    def prompted(self, strategy: str, emb: Embedding, gt: np.ndarray, comps: list[np.ndarray],
                 rng: np.random.Generator) -> dict:
        """One prompt per component, batched; unions of the deployable and of the oracle choices."""
        made = [make_prompt(strategy, c, rng, gt) for c in comps]
        prompts = [p for p, _ in made]
        preds = [pred for i in range(0, len(prompts), DECODE_BATCH)
                 for pred in self.predictor.predict_batch(prompts[i:i + DECODE_BATCH], embedding=emb)]
        deploy, oracle = np.zeros_like(gt), np.zeros_like(gt)
        for comp, pred in zip(comps, preds):
            deploy |= pred.masks[0]
            oracle |= pred.masks[int(np.argmax([dice(m, comp) for m in pred.masks]))]
        infos = pd.DataFrame([info for _, info in made])
        return {**segmentation_scores(deploy, gt), "dice_oracle": dice(oracle, gt),
                "n_prompted": len(comps), "decode_ms": sum(p.decode_ms for p in preds),
                "center_fallback": infos["center_fallback"].sum() if "center_fallback" in infos else None,
                "jitter_frac": infos["jitter_frac"].mean() if "jitter_frac" in infos else None}

    def interactive(self, emb: Embedding, gt: np.ndarray, largest: np.ndarray) -> dict:
        """Centre click on the largest component, then corrective clicks on the whole mask
        (``medsam.interactive``): the top-scored candidate is what the user sees."""
        run = simulate(self.predictor, emb, gt, largest, MAX_CLICKS)
        pred, scores = run.last, run.dice_per_click
        return {**segmentation_scores(pred.masks[0], gt), "dice_oracle": max(dice(m, gt) for m in pred.masks),
                "center_fallback": int(run.center_fallback), "decode_ms": run.decode_ms,
                "dice_per_click": json.dumps([round(s, 5) for s in scores]),
                "noc85": noc(scores, 0.85, MAX_CLICKS), "noc90": noc(scores, 0.90, MAX_CLICKS)}

    def everything(self, emb: Embedding, gt: np.ndarray) -> dict:
        """Automatic masks from a grid; the ground truth is matched to its best mask (dice = dice_oracle)."""
        if self._auto is None or self._auto[0] != emb.key:
            start = time.perf_counter()
            masks = [m.mask for m in generate(self.predictor, emb, points_per_side=self.grid).masks]
            self._auto = (emb.key, masks, (time.perf_counter() - start) * 1e3)
        _, masks, ms = self._auto
        best = max(masks, key=lambda m: dice(m, gt)) if masks else np.zeros_like(gt)
        scores = segmentation_scores(best, gt)
        return {**scores, "dice_oracle": scores["dice"], "n_masks": len(masks), "decode_ms": ms}


# --- outputs --------------------------------------------------------------------------------


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Mean dice and dice_oracle (with row and pair counts) by model x modality x strategy, plus
    modality "all" per model x strategy."""
    both = pd.concat([df, df.assign(modality="all")])
    out = both.groupby(["model", "modality", "strategy"], sort=False).agg(
        dice=("dice", "mean"), dice_oracle=("dice_oracle", "mean"),
        n_rows=("dice", "size"), n_pairs=("mask", "nunique")).reset_index()
    order = {s: i for i, s in enumerate(STRATEGIES)}
    out["_s"] = out["strategy"].map(order)
    out["_all"] = out["modality"] != "all"
    return out.sort_values(["model", "_all", "modality", "_s"]).drop(columns=["_s", "_all"])


def write_summary(out: Path) -> None:
    path = out / "benchmark.csv"
    if path.is_file() and path.stat().st_size:
        summarize(pd.read_csv(path)).to_csv(out / "summary.csv", index=False)


def git_commit(out: Path) -> str:
    """HEAD, with "-dirty" when tracked or untracked files (outside ``out``) differ from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True,
                                text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    try:
        skip = out.resolve().relative_to(REPO).as_posix().rstrip("/") + "/"
    except ValueError:
        skip = None
    dirty = [ln for ln in status if not (skip and ln[3:].strip('"').startswith(skip))]
    return head + ("-dirty" if dirty else "")


def record_run(path: Path, run: dict) -> None:
    """Append one run's record to a provenance file {"runs": [...]}."""
    runs = json.loads(path.read_text())["runs"] if path.is_file() else []
    path.write_text(json.dumps({"runs": runs + [run]}, indent=2) + "\n")


def merge(out: Path) -> None:
    """Fold shard CSVs and provenance files into benchmark.csv / provenance.json; rewrite summary.csv."""
    shards = sorted(out.glob("benchmark.shard-*-of-*.csv"))
    main_csv = out / "benchmark.csv"
    if not shards:
        raise SystemExit(f"medsam.benchmark: There are no shard files (benchmark.shard-i-of-n.csv) in {out}.")
    for path in shards:
        _repair_tail(path)
    parts = [pd.read_csv(p, dtype={"seed": int}) for p in ([main_csv] if main_csv.is_file() else []) + shards]
    merged = pd.concat(parts).drop_duplicates(KEY)
    tmp = main_csv.with_suffix(".csv.tmp")
    merged.to_csv(tmp, index=False)
    os.replace(tmp, main_csv)
    for prov in sorted(out.glob("provenance.shard-*-of-*.json")):
        for run in json.loads(prov.read_text())["runs"]:
            record_run(out / "provenance.json", run)
        prov.unlink()
    for path in shards:
        path.unlink()
    write_summary(out)
    print(f"Merged {len(shards)} shard file(s) into {main_csv} ({len(merged)} rows).")


def run(args: argparse.Namespace, argv: Sequence[str]) -> None:
    pairs = select_pairs(read_manifest(args.data), args.limit, args.shard, args.split)
    csv_path, prov_path = output_paths(args.out, args.shard)
    args.out.mkdir(parents=True, exist_ok=True)
    shards = distributed.shard_files(args.out)  # blocks a Ray run finished but did not fold in
    done = done_keys({args.out / "benchmark.csv", csv_path, *shards})
    plan = []  # (pass name, model, [(pair, todo)]) worked out before any model or image is loaded
    for name, kinds in PASSES:
        todo_units = units([s for s in args.strategies if STRATEGIES[s].kind in kinds], args.seeds)
        for model in args.models:
            work = [(pair, todo) for _, pair in pairs.iterrows()
                    if (todo := [u for u in todo_units if (model, pair["mask"], *u) not in done])]
            if work:
                plan.append((name, model, work))
    if not plan:
        if shards:
            print(f"Folded {distributed.fold_shards(args.out, KEY, append_rows)} rows of finished Ray blocks "
                  f"into {csv_path}.")
        print(f"Nothing to do: all {len(pairs)} pairs are done in {csv_path}.")
        if not args.shard:
            write_summary(args.out)
        return

    start, t0, commit = datetime.now(timezone.utc), time.perf_counter(), git_commit(args.out)
    stats = {"pairs_done": 0, "rows_written": 0, "pairs_failed": 0}
    options: dict = {"engine": args.engine}
    engines: set[str] = set()  # backend tags used
    completed = False
    try:
        if args.engine == "ray":
            outcome = distributed.run_blocks(plan, args, COLUMNS)
            distributed.fold_shards(args.out, KEY, append_rows)
            stats = {"pairs_done": outcome.pairs, "rows_written": outcome.rows, "pairs_failed": outcome.failed_pairs}
            engines.update(outcome.engines)
            options |= {"workers": outcome.workers, "address": args.address,
                        "cpus_per_worker": args.cpus_per_worker, "block_size": args.block_size}
            completed = outcome.failed_blocks == 0
            if outcome.failed_blocks:
                print(f"{outcome.failed_blocks} block(s) failed (see above); run the same command again to redo them.")
        else:
            run_local(plan, args, csv_path, stats, engines)
            completed = True
    except KeyboardInterrupt:
        raise SystemExit("Interrupted; run the same command again to resume.") from None
    finally:
        record_run(prov_path, {
            "command": command_line(["python", "-m", "medsam.benchmark"], argv),
            "git_commit": commit,  # at the start
            "versions": {"medsam": __version__, "torch": torch.__version__, "numpy": np.__version__,
                         "python": platform.python_version()},
            "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
            "options": {"models": args.models, "strategies": args.strategies, "seeds": args.seeds,
                        "grid": args.grid, "limit": args.limit, "split": args.split,
                        "shard": "/".join(map(str, args.shard)) if args.shard else None,
                        "backend": sorted(engines), **options},
            "start": start.isoformat(timespec="seconds"),
            "end": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "wall_s": round(time.perf_counter() - t0, 1), "completed": completed, **stats})
        if not args.shard:
            write_summary(args.out)
    failed = stats["pairs_failed"]
    print(f"Wrote {stats['rows_written']} rows for {stats['pairs_done']} pairs to {csv_path}"
          + (f"; {failed} pairs failed (see above) and will be retried next run." if failed else "."))
    if args.shard:
        print("When all shards are finished, run with --out and --merge to build benchmark.csv.")


def run_local(plan: Sequence[tuple[str, str, list]], args: argparse.Namespace, csv_path: Path,
              stats: dict[str, int], engines: set[str]) -> None:
    """The plan in this process, pass by pass, appending each pair's rows as it finishes; updates
    ``stats`` and ``engines`` as it goes, so an interrupted run still records its progress."""
    descriptors: dict[str, dict[str, float]] = {}
    pairs_done: set[str] = set()
    for name, model, work in plan:
        predictor = load_model(model, backend=args.backend)
        engines.add(predictor.engine.tag)
        runner = PairRunner(predictor, args.data, args.grid, descriptors)
        for pair, todo in tqdm(work, desc=f"{model} {name}", unit="pair", dynamic_ncols=True):
            try:
                rows = runner.run(pair, todo)
            except MedsamError as exc:
                stats["pairs_failed"] += 1
                tqdm.write(f"Skipped {pair['mask']}: {exc}")
                continue
            append_rows(csv_path, rows)
            stats["rows_written"] += len(rows)
            pairs_done.add(pair["mask"])
            stats["pairs_done"] = len(pairs_done)


def print_report(out: Path, models: Sequence[str]) -> None:
    """Print ``dashboard.report`` for each model of ``out/benchmark.csv``."""
    from .dashboard import report

    path = out / "benchmark.csv"
    if not path.is_file():
        raise SystemExit(f"medsam.benchmark: There is no benchmark.csv in {out}.")
    df = pd.read_csv(path)
    print("\n\n".join(report(df, m) for m in models))


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point; bad input exits with one plain sentence."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if threading.current_thread() is threading.main_thread():  # `kill` stops as cleanly as Ctrl-C
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.merge:
            merge(args.out)
        elif args.report:
            print_report(args.out, args.models)
        else:
            run(args, argv)
    except MedsamError as exc:  # e.g. a model whose checkpoint is not on this machine
        raise SystemExit(f"medsam.benchmark: {exc}") from None


if __name__ == "__main__":
    main()
