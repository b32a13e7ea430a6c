"""The benchmark's prompt strategies, in one place: their names, what kind of prompt, how to show them.

Dependency-free (the dashboard and the results readers use it without torch). ``STRATEGIES`` is in
the benchmark's run order; ``SHOWN_ORDER`` is how figures and tables list them: boxes, then clicks,
then no prompt. ``kind`` is "prompt" (one prompt per target component), "interactive" (corrective
clicks on the whole mask) or "everything" (automatic masks, no prompt); ``random`` strategies draw
their prompts and run once per seed; ``jitter`` is the box-edge shift range in px. The 3D
benchmark's strategies are listed the same way, of kind "volume".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Strategy:
    name: str
    shown: str  # what people read, e.g. "box jittered 10-20 px"
    group: str  # "box prompts", "click prompts" or "no prompt"
    kind: str = "prompt"
    random: bool = False
    jitter: tuple[int, int] | None = None


STRATEGIES: dict[str, Strategy] = {s.name: s for s in [  # the benchmark's run order
    Strategy("point_center", "one click at the centre", "click prompts"),
    Strategy("point_random", "one click at random", "click prompts", random=True),
    Strategy("points_5pos", "5 positive clicks", "click prompts", random=True),
    Strategy("points_5pos5neg", "5 positive + 5 negative clicks", "click prompts", random=True),
    Strategy("box", "box", "box prompts"),
    Strategy("box_point", "box + centre click", "box prompts"),
    Strategy("box_jitter_10", "box jittered 0-10 px", "box prompts", random=True, jitter=(0, 10)),
    Strategy("box_jitter_20", "box jittered 10-20 px", "box prompts", random=True, jitter=(10, 20)),
    Strategy("box_jitter_30", "box jittered 20-30 px", "box prompts", random=True, jitter=(20, 30)),
    Strategy("interactive", "up to 10 corrective clicks", "click prompts", kind="interactive"),
    Strategy("everything", "automatic (everything)", "no prompt", kind="everything"),
]}
GROUPS = ("box prompts", "click prompts", "no prompt")
SHOWN_ORDER = tuple(sorted(STRATEGIES, key=lambda name: GROUPS.index(STRATEGIES[name].group)))
"""The order figures and tables show strategies in: by group, then the benchmark's order."""

STRATEGIES_3D: dict[str, Strategy] = {s.name: s for s in [
    Strategy("box_propagate", "one box, propagated", "box prompts", kind="volume"),
    Strategy("box_every_slice", "a box on every slice (upper bound)", "box prompts", kind="volume"),
    Strategy("box_ends_propagate", "boxes on the first, middle and last slice", "box prompts", kind="volume"),
    Strategy("box_keys_interpolate", "boxes on 5 slices, interpolated between", "box prompts", kind="volume"),
]}
