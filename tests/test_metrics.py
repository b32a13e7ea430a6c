"""Metrics on shapes with known answers."""

import math
from collections.abc import Callable

import numpy as np
import pytest

from medsam.errors import InputError
from medsam.metrics import (
    boundary_complexity,
    components,
    dice,
    hd95,
    intensity_difference,
    iou,
    n_components,
    noc,
    nsd,
    relative_size,
    segmentation_scores,
    target_descriptors,
)


def square(top: int, left: int, size: int = 10, shape: tuple[int, int] = (40, 40)) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[top : top + size, left : left + size] = True
    return m


def disc(cy: float, cx: float, r: float, shape: tuple[int, int] = (300, 300)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


EMPTY = np.zeros((40, 40), dtype=bool)


# --- overlap and surface metrics ------------------------------------------------------------


def test_identical_squares() -> None:
    a = square(10, 10)
    assert segmentation_scores(a, a) == {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "nsd": 1.0}


def test_accepts_0_255_and_0_1_ints() -> None:
    a = square(10, 10)
    assert dice(a.astype(np.uint8) * 255, a.astype(int)) == 1.0


def test_half_overlap() -> None:
    a, b = square(10, 10), square(10, 15)  # overlap 10x5 = 50 of 100 each
    assert dice(a, b) == pytest.approx(0.5)
    assert iou(a, b) == pytest.approx(1 / 3)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_horizontal_shift(k: int) -> None:
    # Every left-edge pixel of one square is exactly k from the other's surface and no surface
    # pixel is further: 10 of the 36 surface pixels sit at the max, so the 95th percentile is k.
    a, b = square(10, 10), square(10, 10 + k)
    assert hd95(a, b) == k
    assert hd95(b, a) == k
    assert nsd(a, b, tolerance=k) == 1.0
    assert nsd(a, b, tolerance=k + 0.5) == 1.0
    assert nsd(a, b, tolerance=k - 0.5) < 1.0


def test_spacing_scales_hd95() -> None:
    a, b = square(10, 10), square(10, 13)
    assert hd95(a, b, spacing=(1.0, 2.0)) == 6.0  # shift is along columns
    assert hd95(a, b, spacing=(5.0, 1.0)) == 3.0
    assert hd95(a, b, spacing=(0.5, 0.5)) == 1.5
    assert nsd(a, b, tolerance=3.0, spacing=(1.0, 2.0)) < 1.0
    assert nsd(a, b, tolerance=6.0, spacing=(1.0, 2.0)) == 1.0


def test_both_empty() -> None:
    assert segmentation_scores(EMPTY, EMPTY) == {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "nsd": 1.0}


@pytest.mark.parametrize("swap", [False, True])
def test_one_empty(swap: bool) -> None:
    pair = (EMPTY, square(10, 10))
    pred, gt = pair[::-1] if swap else pair
    scores = segmentation_scores(pred, gt)
    assert scores == {"dice": 0.0, "iou": 0.0, "hd95": math.inf, "nsd": 0.0}
    assert hd95(pred, gt) == math.inf and nsd(pred, gt) == 0.0


def test_segmentation_scores_match_single_metrics() -> None:
    a, b = disc(20, 20, 9, (50, 50)), disc(23, 25, 7, (50, 50))
    scores = segmentation_scores(a, b, spacing=(0.7, 1.3), nsd_tolerance=1.5)
    assert scores == {
        "dice": dice(a, b),
        "iou": iou(a, b),
        "hd95": hd95(a, b, spacing=(0.7, 1.3)),
        "nsd": nsd(a, b, tolerance=1.5, spacing=(0.7, 1.3)),
    }


def test_shape_mismatch() -> None:
    msg = "prediction is 10x12 pixels but the ground truth is 12x12"
    with pytest.raises(InputError, match=msg):
        dice(np.zeros((10, 12)), np.zeros((12, 12)))
    with pytest.raises(InputError):
        segmentation_scores(np.zeros((10, 12)), np.zeros((12, 12)))


@pytest.mark.parametrize(
    "call",
    [
        lambda: dice(np.zeros((4, 4, 3)), np.zeros((4, 4, 3))),
        lambda: hd95(EMPTY, EMPTY, spacing=(1.0, 0.0)),
        lambda: nsd(EMPTY, EMPTY, tolerance=-1.0),
        lambda: relative_size(np.zeros((0, 5))),
        lambda: intensity_difference(np.zeros((5, 5)), np.zeros((6, 6))),
        lambda: components(EMPTY, max_components=0),
        lambda: noc([0.9], 0.85, max_clicks=0),
    ],
)
def test_bad_input(call: Callable[[], object]) -> None:
    with pytest.raises(InputError):
        call()


# --- target descriptors ---------------------------------------------------------------------


def test_boundary_complexity_shapes() -> None:
    one_disc = boundary_complexity(disc(150, 150, 100))
    assert one_disc == pytest.approx(1.0, rel=0.1)
    sq = boundary_complexity(square(50, 50, 200, (300, 300)))
    # Crofton perimeter is ~5% short on axis-aligned edges, so the square reads ~1.14.
    assert sq == pytest.approx(4 / math.pi, rel=0.12)
    assert sq > one_disc
    assert math.isnan(boundary_complexity(EMPTY))


def test_boundary_complexity_thin_bar() -> None:
    bar = np.zeros((20, 120), dtype=bool)
    bar[5:7, 10:110] = True
    assert boundary_complexity(bar) > 10 * boundary_complexity(disc(150, 150, 100))


def test_boundary_complexity_ignores_component_count() -> None:
    one = disc(150, 80, 40)
    two = one | disc(150, 220, 40)
    assert boundary_complexity(two) == pytest.approx(boundary_complexity(one), rel=0.01)


def test_boundary_complexity_scale_invariant() -> None:
    assert boundary_complexity(disc(150, 150, 50)) == pytest.approx(
        boundary_complexity(disc(150, 150, 120)), rel=0.02
    )


def test_intensity_difference_gray() -> None:
    image = np.full((64, 64), 50, dtype=np.uint8)
    mask = square(22, 22, 20, (64, 64))
    image[mask] = 200
    image[:3, :3] = 255  # far outside the ring: ignored
    assert intensity_difference(image, mask) == (200 - 50) / 255
    assert intensity_difference(image, mask, ring=10) == (200 - 50) / 255


def test_intensity_difference_rgb() -> None:
    mask = square(22, 22, 20, (64, 64))
    image = np.empty((64, 64, 3), dtype=np.uint8)
    image[:] = (80, 20, 50)  # gray 50
    image[mask] = (230, 170, 200)  # gray 200
    assert intensity_difference(image, mask) == (200 - 50) / 255


def test_intensity_difference_border_and_empty() -> None:
    image = np.zeros((20, 20))
    image[:, :5] = 255.0
    stripe = image > 0  # touches three borders: the ring is clipped to the right side only
    assert intensity_difference(image, stripe) == 1.0
    assert math.isnan(intensity_difference(image, np.ones((20, 20))))  # no ring left
    assert math.isnan(intensity_difference(image, np.zeros((20, 20))))


def test_relative_size() -> None:
    assert relative_size(square(0, 0, 10, (20, 20))) == 0.25
    assert relative_size(EMPTY) == 0.0


def test_components_order_and_cap() -> None:
    m = square(0, 0, 2, (30, 30)) | square(10, 10, 5, (30, 30)) | square(20, 20, 3, (30, 30))
    m[5, 5] = m[6, 6] = True  # diagonal neighbours: one 8-connected component of 2
    assert n_components(m) == 4
    assert n_components(EMPTY) == 0
    parts = components(m)
    assert [int(p.sum()) for p in parts] == [25, 9, 4, 2]
    assert not np.any(np.sum(parts, axis=0) > 1) and np.array_equal(np.any(parts, axis=0), m)
    assert [int(p.sum()) for p in components(m, max_components=2)] == [25, 9]
    assert components(EMPTY) == []


def test_target_descriptors() -> None:
    image = np.full((64, 64), 50, dtype=np.uint8)
    mask = square(22, 22, 20, (64, 64))
    image[mask] = 200
    d = target_descriptors(image, mask)
    assert set(d) == {
        "boundary_complexity", "intensity_difference", "relative_size", "n_components"
    }
    assert d["boundary_complexity"] == boundary_complexity(mask)
    assert d["intensity_difference"] == (200 - 50) / 255
    assert d["relative_size"] == 400 / 64**2
    assert d["n_components"] == 1


# --- interactive segmentation ---------------------------------------------------------------


def test_noc() -> None:
    scores = [0.5, 0.8, 0.86, 0.91]
    assert noc(scores, 0.85) == 3
    assert noc(scores, 0.90) == 4
    assert noc(scores, 0.5) == 1
    assert noc(scores, 0.95) == 10
    assert noc(scores, 0.90, max_clicks=3) == 3  # reached only after the cap
    assert noc([], 0.85, max_clicks=5) == 5
