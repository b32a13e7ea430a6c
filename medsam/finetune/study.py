"""What the label-efficiency studies of prompt-free heads share (``heads``: 2D, k labelled images;
``heads3d``: k labelled volumes): nested seeded draws, resumable CSV rows, options, run records.

Conventions: draw d of k training items (images or volumes) is the first k of a permutation seeded by
the dataset and d, so one draw's subsets are nested (k=2 holds k=1's item). A row is keyed by
``KEY`` (dataset, head, k_label, draw, class); a study skips the keys its CSV already holds, so an
interrupted run resumes where it stopped. Each run appends a record (command, git commit at the
start, versions, machine, options, times, rows written, completed) to the study's provenance JSON.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import __version__
from ..errors import MedsamError
from ..heads import KINDS
from ..paths import command_line
from ..results import git_commit, record_run

KEY = ["dataset", "head", "k_label", "draw", "class"]
DECODER_STARTS = ("litemedsam", "prior")  # heads.train_head's decoder_start


def subset(train_images: Sequence[str], k: int, dataset: str, draw: int) -> list[str]:
    """Draw ``draw``'s k training images: the first k of a permutation seeded by dataset and draw."""
    rng = np.random.default_rng([draw, zlib.crc32(dataset.encode())])
    return [train_images[i] for i in rng.permutation(len(train_images))[:k]]


def done_keys(path: Path) -> set[tuple]:
    """Keys (dataset, head, k_label, draw, class) already in the CSV."""
    if not path.is_file() or not path.stat().st_size:
        return set()
    df = pd.read_csv(path, usecols=KEY, dtype={"k_label": str, "draw": int, "class": str})
    return set(df[KEY].itertuples(index=False, name=None))


def append_rows(path: Path, rows: list[dict], columns: Sequence[str]) -> None:
    """Append rows in ``columns`` order with one write, flushed to disk."""
    header = not path.is_file() or path.stat().st_size == 0
    with open(path, "a", encoding="utf-8") as f:
        f.write(pd.DataFrame(rows, columns=list(columns)).to_csv(index=False, header=header))
        f.flush()
        os.fsync(f.fileno())


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one plain sentence, no usage dump
        raise SystemExit(f"{self.prog}: {message[0].upper()}{message[1:].rstrip('.')}.")


def study_parser(prog: str, description: str, datasets: str, steps: int, batch_size: int,
                 unit: str, epochs: int = 0, decoder_start: str = "litemedsam") -> _Parser:
    """The options a label-efficiency study shares (``unit``: what k counts, e.g. "images")."""
    p = _Parser(prog=prog, description=description)
    p.add_argument("--data", type=Path, required=True, help="folder with manifest.csv and the files it names")
    p.add_argument("--datasets", default=datasets, help=f"comma-separated dataset ids (default {datasets})")
    p.add_argument("--k", default="1,2,4,8,all", help=f"labelled training {unit} per run: numbers and/or 'all'")
    p.add_argument("--draws", type=int, default=3, help=f"draws 0..N-1 of the k {unit} (default 3)")
    p.add_argument("--heads", default=",".join(KINDS), help=f"comma-separated heads (default {','.join(KINDS)})")
    p.add_argument("--steps", type=int, default=steps, help=f"optimiser steps per training (default {steps})")
    p.add_argument("--epochs", type=int, default=epochs,
                   help=f"at least this many passes over the training set: a training on n images or slices "
                        f"takes max(--steps, epochs x n) steps (default {epochs})")
    p.add_argument("--decoder-start", choices=DECODER_STARTS, default=decoder_start,
                   help="the prompt-free decoder's starting logits: LiteMedSAM's prompt-less output, or that "
                        f"output scaled to the class prior (default {decoder_start})")
    p.add_argument("--batch-size", type=int, default=batch_size, help=f"images per step (default {batch_size})")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 on a busy machine)")
    p.add_argument("--out", type=Path, help="output folder of the study (created; resumed if present)")
    return p


def check_study_args(p: _Parser, args: argparse.Namespace) -> argparse.Namespace:
    """Split and check the options of ``study_parser`` (one sentence and exit on a bad one)."""
    args.datasets = [d for d in args.datasets.split(",") if d]
    args.heads = [h for h in args.heads.split(",") if h]
    if bad := [h for h in args.heads if h not in KINDS]:
        p.error(f"unknown head '{bad[0]}'; choose from {', '.join(KINDS)}")
    args.k = [k.strip() for k in args.k.split(",") if k.strip()]
    if not args.k or any(k != "all" and not (k.isdigit() and int(k) > 0) for k in args.k):
        p.error("--k must be positive numbers and/or 'all', comma-separated")
    args.k = [k if k == "all" else str(int(k)) for k in dict.fromkeys(args.k)]
    for name in ("draws", "steps", "batch_size", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.epochs < 0:
        p.error("--epochs must be at least 0")
    if not (args.data / "manifest.csv").is_file():
        p.error(f"there is no manifest.csv in {args.data}")
    return args


def training_steps(args: argparse.Namespace, n: int) -> int:
    """Optimiser steps of a training on ``n`` images or slices: ``--steps``, or more to make
    ``--epochs`` passes over them."""
    return max(args.steps, args.epochs * n)


def read_manifest(args: argparse.Namespace, columns: Sequence[str], prog: str) -> pd.DataFrame:
    """The study's manifest (strings); exits with a sentence when it lacks a column or a dataset."""
    manifest = pd.read_csv(args.data / "manifest.csv", dtype=str)
    if missing := [c for c in columns if c not in manifest]:
        raise SystemExit(f"{prog}: manifest.csv lacks the column(s) {', '.join(missing)}.")
    if unknown := sorted(set(args.datasets) - set(manifest["dataset_id"])):
        raise SystemExit(f"{prog}: The manifest has no dataset '{unknown[0]}'.")
    return manifest


@contextmanager
def recorded_study(path: Path, command: Sequence[str], argv: Sequence[str], args: argparse.Namespace,
                   **options: object) -> Iterator[dict]:
    """Run a study's body and append its record to ``path`` (``record_run``), also when it fails or is
    interrupted (then it exits with a sentence: the run resumes). The body counts what it writes in
    the yielded dict's ``rows_written``; ``options`` join the study options in the record."""
    start, t0, commit = datetime.now(UTC), time.perf_counter(), git_commit(path.parent)
    state = {"rows_written": 0, "completed": False}
    try:
        yield state
        state["completed"] = True
    except KeyboardInterrupt:
        raise SystemExit("Interrupted; run the same command again to resume.") from None
    finally:
        record_run(path, {
            "command": command_line(list(command), argv),
            "git_commit": commit,  # at the start
            "versions": {"medsam": __version__, "torch": torch.__version__, "numpy": np.__version__,
                         "python": platform.python_version()},
            "machine": {"platform": platform.platform(), "processor": platform.processor(),
                        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()},
            "options": {"datasets": args.datasets, "k": args.k, "draws": args.draws, "heads": args.heads,
                        "steps": args.steps, "epochs": args.epochs, "decoder_start": args.decoder_start,
                        "batch_size": args.batch_size, **options},
            "start": start.isoformat(timespec="seconds"),
            "end": datetime.now(UTC).isoformat(timespec="seconds"),
            "wall_s": round(time.perf_counter() - t0, 1), "completed": state["completed"],
            "rows_written": state["rows_written"]})


RunDataset = Callable[[argparse.Namespace, str, pd.DataFrame, Path, set], int]


def run_study(args: argparse.Namespace, argv: Sequence[str], prog: str, stem: str, manifest: pd.DataFrame,
              run_dataset: RunDataset, **options: object) -> None:
    """Each dataset of ``args.datasets`` through ``run_dataset`` (its manifest rows, the CSV, the keys
    already done; returns the rows it wrote) into ``<out>/<stem>.csv``, recorded in
    ``<out>/<stem>_provenance.json`` with ``options`` (``recorded_study``)."""
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path = args.out / f"{stem}.csv"
    done = done_keys(csv_path)
    with recorded_study(args.out / f"{stem}_provenance.json", prog.split(), argv, args, **options) as state:
        for dataset in args.datasets:
            state["rows_written"] += run_dataset(args, dataset, manifest[manifest["dataset_id"] == dataset],
                                                 csv_path, done)
    print(f"Wrote {state['rows_written']} rows to {csv_path}.")


def study_main(prog: str, parse_args: Callable[[list[str]], argparse.Namespace],
               run: Callable[[argparse.Namespace, list[str]], None], argv: list[str] | None) -> None:
    """A study's command line: ``argv`` (default ``sys.argv[1:]``) parsed and run; bad input ends it
    with ``prog: <plain sentence>``, no traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        run(args, argv)
    except MedsamError as exc:
        raise SystemExit(f"{prog}: {exc}") from None
