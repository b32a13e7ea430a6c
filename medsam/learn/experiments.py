"""The Learn tab's live experiments: each finding of the two studies run on one image, in seconds.

Every experiment takes a ``Target`` (an RGB image, its ground-truth mask and a box on it) and model
names, runs only the mask decoder where it can (the image is encoded once per model and cached), and
returns ``Trial``s: a named prompt, its mask and its DICE. Prompts follow the benchmark's own
strategies (``medsam.prompts``), seeded like it (``rng_for``), so a lesson shows on one image what the
benchmark measured on all of them. No Gradio here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..automatic import generate
from ..errors import InputError
from ..interactive import ClickRun, simulate
from ..metrics import dice, iou, target_descriptors
from ..predictor import Prediction, Prompt, load_model
from ..prompts import bbox, center_point, jitter_box, random_points, rng_for

MAX_TRIALS = 50
"""Most repetitions of a randomised prompt per request (each is one decoder call)."""


@dataclass(frozen=True)
class Target:
    """The image, the object's ground truth and the box the user drew (default: the mask's tight box)."""

    rgb: np.ndarray
    gt: np.ndarray
    box: np.ndarray

    @classmethod
    def make(cls, rgb: np.ndarray, gt: np.ndarray | None, box: object = None) -> Target:
        if gt is None or not np.asarray(gt).any():
            raise InputError("This experiment needs a ground-truth mask with the object in it: pick an example "
                             "or load a mask.")
        gt = np.asarray(gt, bool)
        b = bbox(gt) if box is None else np.asarray(box, np.float64).reshape(4)
        return cls(rgb, gt, b)

    @property
    def key(self) -> str:
        """A stable name of the image and box for seeding."""
        return f"{self.rgb.shape}:{int(self.rgb.sum())}:{self.box.round(1).tolist()}"


@dataclass
class Trial:
    """One prompt's result: what was asked, which candidate was shown, and how good it is."""

    group: str  # e.g. "box", "box jittered 10-20 px"
    mask: np.ndarray
    dice: float
    prompt: Prompt | None = None
    extra: dict = field(default_factory=dict)


def _run(model: str, target: Target, prompts: list[Prompt]) -> list[Prediction]:
    predictor = load_model(model)
    emb = predictor.set_image(target.rgb)
    return predictor.predict_batch(prompts, embedding=emb)


def same_prompt(targets: list[tuple[str, Target]], model: str) -> list[Trial]:
    """Finding 1: the same kind of prompt (a tight box) on several objects."""
    return [_trials(model, target, [(name, Prompt(box=target.box))])[0] for name, target in targets]


def _trials(model: str, target: Target, named: list[tuple[str, Prompt]]) -> list[Trial]:
    """Each named prompt decoded (batched) and scored."""
    preds = _run(model, target, [prompt for _, prompt in named])
    return [Trial(name, p.masks[0], dice(p.masks[0], target.gt), prompt) for (name, prompt), p in zip(named, preds)]


def three_prompts(target: Target, model: str, seed: int = 0) -> list[Trial]:
    """A box, one click at the centre and five random clicks inside the object (the benchmark's
    ``box``, ``point_center`` and ``points_5pos``)."""
    point, _ = center_point(target.gt)
    five = random_points(target.gt, 5, rng_for(seed, target.key, "points_5pos"))
    return _trials(model, target, [("box", Prompt(box=target.box)), ("one click", Prompt(point[None], np.ones(1))),
                                   ("five clicks", Prompt(five, np.ones(5)))])


def prompt_types(target: Target, model: str, seed: int = 0) -> list[Trial]:
    """Finding 3: ``three_prompts`` and the automatic "everything" mode on one image. Everything
    mode is scored as the benchmark does: its best mask against the ground truth."""
    predictor = load_model(model)
    start = time.perf_counter()
    masks = [m.mask for m in generate(predictor, predictor.set_image(target.rgb), points_per_side=16).masks]
    best = max(masks, key=lambda m: dice(m, target.gt)) if masks else np.zeros_like(target.gt)
    return [*three_prompts(target, model, seed),
            Trial("everything (best of its masks)", best, dice(best, target.gt),
                  extra={"masks": len(masks), "seconds": time.perf_counter() - start})]


def jitter_range(px: float) -> tuple[float, float]:
    """The benchmark's jitter for ``px``: each edge moves by uniform(px - 10, px) px (10 -> 0-10)."""
    if not 0 < px <= 100:
        raise InputError(f"The jitter must be more than 0 and at most 100 pixels, not {px:g}.")
    return max(px - 10.0, 0.0), float(px)


def _count(n: int) -> int:
    if not 1 <= n <= MAX_TRIALS:
        raise InputError(f"The number of repetitions must be from 1 to {MAX_TRIALS}, not {n}.")
    return int(n)


def _jittered(target: Target, px: float, n: int, seed: int) -> list[tuple[str, Prompt]]:
    """``n`` boxes with each edge jittered as the benchmark's ``box_jitter_<px>`` strategy (seeded)."""
    lo, hi = jitter_range(px)
    rng = rng_for(seed, target.key, f"box_jitter_{px:g}")
    return [(f"box jittered {lo:g}-{hi:g} px", Prompt(box=jitter_box(target.box, lo, hi, rng, target.gt.shape)[0]))
            for _ in range(_count(n))]


def jittered_boxes(target: Target, model: str, px: float, n: int, seed: int = 0) -> tuple[Trial, list[Trial]]:
    """The box as drawn, and ``n`` jittered copies of it."""
    trials = _trials(model, target, [("box as drawn", Prompt(box=target.box)), *_jittered(target, px, n, seed)])
    return trials[0], trials[1:]


def sensitivity(target: Target, model: str, n: int = 10, seed: int = 0) -> list[Trial]:
    """Finding 4: the centre click, ``n`` random interior clicks, the box as drawn, and the box
    jittered by 0-10, 10-20 and 20-30 px ``n`` times each."""
    point, _ = center_point(target.gt)
    clicks = random_points(target.gt, _count(n), rng_for(seed, target.key, "point_random"))
    named = [("centre click", Prompt(point[None], np.ones(1))),
             *(("random click", Prompt(c[None], np.ones(1))) for c in clicks),
             ("box as drawn", Prompt(box=target.box)),
             *(pair for px in (10, 20, 30) for pair in _jittered(target, px, n, seed))]
    return _trials(model, target, named)


def clicks_to_target(target: Target, models: list[str], max_clicks: int = 10) -> dict[str, ClickRun]:
    """Finding 5: the benchmark's corrective-click simulator for each model on this image."""
    if not 1 <= max_clicks <= 20:
        raise InputError(f"The number of clicks must be from 1 to 20, not {max_clicks}.")
    out = {}
    for model in dict.fromkeys(models):
        predictor = load_model(model)
        out[model] = simulate(predictor, predictor.set_image(target.rgb), target.gt, None, max_clicks)
    return out


def descriptors(target: Target, model: str) -> dict[str, float]:
    """Finding 6: the target's boundary complexity, intensity difference and size, and the box's DICE."""
    box = _trials(model, target, [("box", Prompt(box=target.box))])[0]
    return {**target_descriptors(target.rgb, target.gt), "dice": box.dice}


def finetuned_vs_base(target: Target, base: str, finetuned: str, seed: int = 0) -> list[Trial]:
    """Finding 7: the same three prompts for a model and its finetune; ``extra["model"]`` says whose."""
    out = []
    for model in (base, finetuned):
        for trial in three_prompts(target, model, seed):
            trial.extra["model"] = model
            out.append(trial)
    return out


def candidates(target: Target, model: str, prompt: Prompt | None = None) -> list[Trial]:
    """Finding 8: SAM's three candidates for one prompt, with their predicted and true IoU."""
    prompt = prompt or Prompt(center_point(target.gt)[0][None], np.ones(1))
    pred = _run(model, target, [prompt])[0]
    return [Trial(f"candidate {k + 1}", m, dice(m, target.gt), prompt,
                  {"predicted_iou": float(s), "true_iou": iou(m, target.gt)})
            for k, (m, s) in enumerate(zip(pred.masks, pred.scores))]
