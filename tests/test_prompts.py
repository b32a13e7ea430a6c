"""Prompt strategies and the corrective-click simulator (pure functions, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from medsam import Prompt
from medsam.metrics import components
from medsam.prompts import (
    STRATEGIES,
    bbox,
    center_point,
    corrective_click,
    enlarged_box,
    jitter_box,
    make_prompt,
    negative_points,
    random_points,
    rng_for,
)

YY, XX = np.mgrid[:120, :160]


def ellipse(cy: float = 60, cx: float = 80, ry: float = 20, rx: float = 30) -> np.ndarray:
    return (YY - cy) ** 2 / ry**2 + (XX - cx) ** 2 / rx**2 < 1


def inside(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    xy = points.astype(int)
    return mask[xy[:, 1], xy[:, 0]]


def test_center_point_is_the_centroid_of_a_convex_mask() -> None:
    point, fallback = center_point(ellipse())
    assert point.tolist() == [80, 60] and not fallback


@pytest.mark.parametrize("shape", ["ring", "c"])
def test_center_point_falls_back_to_the_interior_point(shape: str) -> None:
    r = np.hypot(YY - 60, XX - 80)
    mask = (r > 15) & (r < 35)
    if shape == "c":
        mask &= ~((XX > 80) & (np.abs(YY - 60) < 10))
    point, fallback = center_point(mask)
    assert fallback and inside(mask, point[None]).all()
    x, y = point.astype(int)
    assert 20 <= np.hypot(x - 80, y - 60) <= 30, "near the middle of the ring's band, not on its edge"


def test_random_points_lie_inside_the_mask() -> None:
    mask = ellipse()
    points = random_points(mask, 500, np.random.default_rng(0))
    assert points.shape == (500, 2) and inside(mask, points).all()
    assert len({tuple(p) for p in random_points(mask, 5, np.random.default_rng(1))}) == 5


def test_negative_points_lie_outside_the_mask_inside_the_enlarged_box() -> None:
    mask = ellipse()
    x0, y0, x1, y1 = enlarged_box(bbox(mask), mask.shape)
    assert (x0, y0, x1, y1) == (22, 22, 138, 98)  # box 51..109 x 41..79, doubled about (80, 60)
    neg = negative_points(mask, 300, np.random.default_rng(0))
    assert not inside(mask, neg).any()
    assert ((neg[:, 0] >= x0) & (neg[:, 0] <= x1) & (neg[:, 1] >= y0) & (neg[:, 1] <= y1)).all()
    other = ellipse(cy=60, cx=128, ry=8, rx=8)  # another component of the same target
    assert not inside(other, negative_points(mask, 300, np.random.default_rng(0), mask | other)).any()


def test_points_5pos5neg_prompt() -> None:
    mask = ellipse()
    prompt, info = make_prompt("points_5pos5neg", mask, np.random.default_rng(0))
    assert prompt.labels.tolist() == [1] * 5 + [0] * 5 and prompt.box is None and prompt.multimask
    assert inside(mask, prompt.points[:5]).all() and not inside(mask, prompt.points[5:]).any()
    assert info == {}


@pytest.mark.parametrize("name,low,high", [("box_jitter_10", 0, 10), ("box_jitter_20", 10, 20),
                                           ("box_jitter_30", 20, 30)])
def test_jitter_magnitudes_lie_in_their_range(name: str, low: int, high: int) -> None:
    mask = ellipse(ry=15, rx=20)
    box = bbox(mask)
    assert STRATEGIES[name].jitter == (low, high)
    for seed in range(20):
        prompt, info = make_prompt(name, mask, np.random.default_rng(seed))
        shift = np.abs(prompt.box - box)
        assert ((shift >= low) & (shift <= high)).all(), shift
        assert info["jitter_frac"] == pytest.approx(shift.mean() / np.mean(box[2:] - box[:2]))


def test_jittered_boxes_are_clipped_and_valid() -> None:
    shape = (120, 160)
    for seed in range(200):
        rng = np.random.default_rng(seed)
        for box in ([0, 0, 5, 4], [150, 110, 159, 119], [70, 50, 72, 51]):
            new, frac = jitter_box(np.array(box, float), 20, 30, rng, shape)
            assert 0 <= new[0] < new[2] <= 159 and 0 <= new[1] < new[3] <= 119, (box, new)
            assert frac >= 0


def test_thin_component_gets_a_box_with_area() -> None:
    mask = np.zeros((20, 30), bool)
    mask[5:15, 29] = True
    x0, y0, x1, y1 = bbox(mask)
    assert x0 < x1 <= 29 and (y0, y1) == (5, 14)


def test_corrective_click_targets_the_largest_error_region() -> None:
    gt = ellipse()
    missed = gt & (XX < 70)  # a large false negative on the left
    pred = (gt & ~missed) | ellipse(cy=15, cx=20, ry=5, rx=5)  # plus a small false positive
    point, label = corrective_click(pred, gt)
    assert label == 1 and inside(missed, point[None]).all()
    extra = ellipse(cy=100, cx=130, ry=15, rx=25)  # now the false positive is the larger error
    point, label = corrective_click(gt | extra, gt)
    assert label == 0 and inside(extra, point[None]).all()
    assert corrective_click(gt, gt) is None


def _coords(prompt: Prompt) -> np.ndarray:
    parts = [prompt.points.ravel() if prompt.points is not None else [], prompt.box if prompt.box is not None else []]
    return np.concatenate(parts)


def test_random_strategies_are_deterministic_per_seed() -> None:
    gt = ellipse() | ellipse(cy=15, cx=20, ry=6, rx=6)
    comps = components(gt)
    for name, spec in STRATEGIES.items():
        if spec.kind != "prompt":
            continue
        runs = [np.concatenate([_coords(make_prompt(name, c, rng_for(seed, "a/mask.png", name), gt)[0])
                                for c in comps]) for seed in (0, 0, 1)]
        assert np.array_equal(runs[0], runs[1]), name
        assert np.array_equal(runs[0], runs[2]) != spec.random, name
