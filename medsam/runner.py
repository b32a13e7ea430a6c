"""The benchmark's work: which pairs, in what order, and the rows of one pair (``PairRunner``).

Work runs in three passes over all pairs (one image encode per pair and pass): first the cheap
point/box strategies, then ``interactive``, then ``everything``, so a run cut short still holds the
main results for every pair. Pairs are visited round-robin over datasets (the pairs of one image
together), so a partial or ``--limit`` run spans the datasets. A plan is a list of (pass name, model,
[(pair, [(strategy, seed), ...])]) worked out before any model or image is loaded. The prompts of
one strategy and seed on an image go to ``predict_batch`` together, at most ``DECODE_BATCH`` per
call; automatic masks are made once per image and grid. ``run_local`` runs a plan in this process;
``medsam.distributed`` runs it on Ray with the same ``PairRunner``. Both return an ``Outcome``.
Row columns: ``medsam.results``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from .automatic import generate
from .decoding import Embedding
from .embeddings import features_for
from .errors import MedsamError
from .imaging import load_mask, load_rgb
from .interactive import MAX_CLICKS, simulate
from .metrics import components, dice, noc, segmentation_scores, target_descriptors
from .precision import measured_precision
from .predictor import Predictor, load_model
from .prompts import make_prompt, rng_for
from .results import PAIR_COLUMNS, append_rows
from .strategies import STRATEGIES

MANIFEST_COLUMNS = ["dataset_id", "modality", "object", "image", "mask", "group", "split"]
# A first pass of one-prompt strategies over all pairs, then the slow ones.
PASSES = [("point/box", ("prompt",)), ("interactive", ("interactive",)), ("everything", ("everything",))]
MAX_COMPONENTS = 20
# Prompts per decoder call. On CPU the decoder costs ~55-65 ms per prompt in batches of 1-8 but
# ~100 ms in batches of 16 or more (LiteMedSAM, 2 cores), so larger batches are split.
DECODE_BATCH = 8
# 8x8 = 64 grid points per image for CPU cost (the app uses 16x16); COSMOS used 32x32 (1024 points).
DEFAULT_GRID = 8

Plan = list[tuple[str, str, list[tuple[pd.Series, list[tuple[str, int]]]]]]


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


def make_plan(pairs: pd.DataFrame, models: Sequence[str], strategies: Sequence[str], seeds: int,
              done: set[tuple[str, str, str, int]]) -> Plan:
    """The work still to do, pass by pass and model by model; rows whose key is in ``done`` are skipped."""
    plan: Plan = []
    for name, kinds in PASSES:
        todo_units = units([s for s in strategies if STRATEGIES[s].kind in kinds], seeds)
        for model in models:
            work = [(pair, todo) for _, pair in pairs.iterrows()
                    if (todo := [u for u in todo_units if (model, pair["mask"], *u) not in done])]
            if work:
                plan.append((name, model, work))
    return plan


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
        """Rows for ``todo`` (strategy, seed) on one pair, encoding its image once.

        Args:
            pair: a manifest row (``read_manifest``), or the same as a dict.
            todo: the (strategy, seed) units to run.

        Returns:
            One row (``medsam.results.COLUMNS``) per unit.

        Raises:
            MedsamError: an unreadable image or mask, or an empty mask.
        """
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


# --- a whole plan ---------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a run of a plan did. ``stopped``: the interrupt or error that ended a local run early (its
    progress up to then is counted); ``failed_blocks``: Ray blocks left for the next run."""

    rows: int = 0
    pairs: int = 0
    failed_pairs: int = 0
    failed_blocks: int = 0
    workers: int = 0
    engines: tuple[str, ...] = ()  # backend tags used
    stopped: BaseException | None = None

    @property
    def completed(self) -> bool:
        return self.stopped is None and not self.failed_blocks


def run_local(plan: Plan, data: Path, grid: int, backend: str | None, csv_path: Path) -> Outcome:
    """Run the plan in this process, pass by pass, appending each pair's rows to ``csv_path`` as it
    finishes.

    Args:
        plan: from ``make_plan``.
        data: the folder the manifest's paths are relative to.
        grid: points per side for ``everything``.
        backend: for ``load_model`` (None: ``MEDSAM_BACKEND``, else auto).
        csv_path: the CSV rows are appended to.

    Returns:
        The ``Outcome``; a Ctrl-C or a model that cannot be loaded ends the run early and is returned
        as ``Outcome.stopped`` (to re-raise once the run is recorded). Bad pairs are skipped and counted.
    """
    outcome, engines = Outcome(), set()
    descriptors: dict[str, dict[str, float]] = {}
    pairs_done: set[str] = set()
    try:
        for name, model, work in plan:
            predictor = load_model(model, backend=backend, precision=measured_precision())
            engines.add(predictor.engine.tag)
            runner = PairRunner(predictor, data, grid, descriptors)
            for pair, todo in tqdm(work, desc=f"{model} {name}", unit="pair", dynamic_ncols=True):
                try:
                    rows = runner.run(pair, todo)
                except MedsamError as exc:
                    outcome.failed_pairs += 1
                    tqdm.write(f"Skipped {pair['mask']}: {exc}")
                    continue
                append_rows(csv_path, rows)
                outcome.rows += len(rows)
                pairs_done.add(pair["mask"])
                outcome.pairs = len(pairs_done)
    except (KeyboardInterrupt, MedsamError) as exc:
        outcome.stopped = exc
    outcome.engines = tuple(sorted(engines))
    return outcome
