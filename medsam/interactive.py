"""The corrective-click simulator: an annotator who clicks where the mask is most wrong.

The first click is the centre point of ``first`` (the largest component, in the benchmark); every
next click is ``prompts.corrective_click`` on the current mask against the whole ground truth. The
mask shown after a click is the candidate the model scores highest (what a user sees), and its
logits are fed back with the next click, as in SAM's interactive training. Used by the benchmark's
``interactive`` strategy and by the Learn tab's annotation-effort lesson.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .metrics import dice
from .predictor import Embedding, Prediction, Predictor, Prompt
from .prompts import center_point, corrective_click

MAX_CLICKS = 10


@dataclass
class ClickRun:
    """What the simulated annotator did and got, click by click."""

    points: list[np.ndarray] = field(default_factory=list)  # (x, y) per click
    labels: list[float] = field(default_factory=list)  # 1 positive, 0 negative
    dice_per_click: list[float] = field(default_factory=list)
    center_fallback: bool = False  # the centroid lay outside the target: its interior point was used
    decode_ms: float = 0.0
    last: Prediction | None = None  # the prediction after the last click

    def clicks_to(self, threshold: float) -> int | None:
        """Clicks until DICE >= threshold, or None if it was never reached."""
        return next((i + 1 for i, d in enumerate(self.dice_per_click) if d >= threshold), None)


def simulate(predictor: Predictor, emb: Embedding, gt: np.ndarray, first: np.ndarray | None = None,
             max_clicks: int = MAX_CLICKS) -> ClickRun:
    """Click up to ``max_clicks`` times (stopping once the mask equals ``gt``) on the image ``emb``."""
    point, fallback = center_point(gt if first is None else first)
    run = ClickRun([point], [1.0], center_fallback=fallback)
    mask_input = None
    for click in range(max_clicks):
        pred = predictor.predict_batch([Prompt(np.array(run.points), np.array(run.labels), mask_input=mask_input,
                                               multimask=click == 0)], embedding=emb)[0]
        run.decode_ms += pred.decode_ms
        run.dice_per_click.append(dice(pred.masks[0], gt))
        run.last = pred
        nxt = corrective_click(pred.masks[0], gt)
        if nxt is None or click == max_clicks - 1:
            break
        run.points.append(nxt[0])
        run.labels.append(float(nxt[1]))
        mask_input = pred.logits[0]
    return run
