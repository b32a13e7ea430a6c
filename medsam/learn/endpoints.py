"""The Learn tab's experiments as API calls: files and JSON in, numbers out (no Gradio).

``prompt_sensitivity`` and ``clicks_to_target`` are the named endpoints ``/prompt_sensitivity`` and
``/clicks_to_target``. The image may be any file the app reads (a volume: its middle axial slice);
the ground truth is a binary mask of the same size. Bad input raises ``InputError`` with a sentence.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..models import get_spec
from ..service import MAX_PROMPT_CHARS, open_files
from .experiments import Target, jitter_range, jittered_boxes
from .experiments import clicks_to_target as simulate_clicks


def _target(image: str | Path, ground_truth: str | Path | None, model: str, box: object = None) -> Target:
    get_spec(model)  # the plain "Unknown model" sentence before any file work
    if not ground_truth:
        raise InputError("Give the ground-truth mask: these experiments score every prompt against it.")
    s = open_files(image, ground_truth)
    if box is not None:
        h, w = s.rgb.shape[:2]
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 < w and 0 <= y0 < y1 < h):
            raise InputError(f"The box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) must lie inside the {w}x{h} image with "
                             f"x0 < x1 and y0 < y1.")
    return Target.make(s.rgb, s.gt, box)


def _box(text: str) -> list[float]:
    if len(text) > MAX_PROMPT_CHARS:
        raise InputError(f"The box is {len(text):,} characters long; the limit is {MAX_PROMPT_CHARS:,}.")
    try:
        box = [float(v) for v in json.loads(text)]
        if len(box) != 4 or not all(np.isfinite(box)):
            raise ValueError
    except (ValueError, TypeError, RecursionError) as exc:
        raise InputError("The box must be JSON like [x0, y0, x1, y1] with four finite numbers.") from exc
    return box


def prompt_sensitivity(image: str | Path, ground_truth: str | Path | None, model: str, box: str, jitter: float,
                       n: int, seed: int = 0) -> dict:
    """DICE of ``n`` copies of ``box`` with each edge moved as the benchmark's ``box_jitter_<jitter>``."""
    start = time.perf_counter()
    target = _target(image, ground_truth, model, _box(box))
    drawn, trials = jittered_boxes(target, model, float(jitter), int(n), seed)
    return {"dice": [round(float(t.dice), 5) for t in trials], "dice_unjittered": round(float(drawn.dice), 5),
            "boxes": [[round(float(v), 2) for v in t.prompt.box] for t in trials],
            "jitter_px": list(jitter_range(float(jitter))), "model": model, "seed": seed,
            "seconds": round(time.perf_counter() - start, 3)}


def clicks_to_target(image: str | Path, ground_truth: str | Path | None, model: str, max_clicks: int) -> dict:
    """The benchmark's corrective-click simulator: DICE after each click and the clicks to 0.85 / 0.90."""
    start = time.perf_counter()
    run = simulate_clicks(_target(image, ground_truth, model), [model], int(max_clicks))[model]
    return {"dice_per_click": [round(float(d), 5) for d in run.dice_per_click], "noc85": run.clicks_to(0.85),
            "noc90": run.clicks_to(0.90), "clicks": [[float(x), float(y), int(label)] for (x, y), label in
                                                     zip(run.points, run.labels)],
            "model": model, "seconds": round(time.perf_counter() - start, 3)}
