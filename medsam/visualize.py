"""Drawing: mask overlays, prompt markers and automatic-mask label maps on RGB images."""

from __future__ import annotations

import cv2
import numpy as np

MASK_COLOR = (30, 144, 255)  # the chosen mask
GT_COLOR = (255, 215, 0)  # ground-truth outline
POS_COLOR, NEG_COLOR, BOX_COLOR = (0, 220, 0), (230, 0, 0), (255, 140, 0)


def overlay(rgb: np.ndarray, mask: np.ndarray | None, color: tuple[int, int, int] = MASK_COLOR,
            alpha: float = 0.45, outline: np.ndarray | None = None) -> np.ndarray:
    """Blend a mask over an image; optionally draw another mask (e.g. ground truth) as an outline."""
    out = rgb.copy()
    if mask is not None and mask.any():
        out[mask] = (out[mask] * (1 - alpha) + np.array(color) * alpha).astype(np.uint8)
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, color, _thickness(rgb))
    if outline is not None and outline.any():
        contours, _ = cv2.findContours(outline.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, GT_COLOR, _thickness(rgb))
    return out


def draw_prompts(rgb: np.ndarray, points: list[tuple[float, float]], labels: list[int],
                 box: tuple[float, float, float, float] | None,
                 corner: tuple[float, float] | None = None) -> np.ndarray:
    """Draw positive (green) and negative (red) clicks, the box, and a pending box corner."""
    out = np.ascontiguousarray(rgb.copy())
    t = _thickness(rgb)
    radius = max(3, 3 * t)
    if box is not None:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x0, y0), (x1, y1), BOX_COLOR, t)
    if corner is not None:
        cv2.drawMarker(out, (int(corner[0]), int(corner[1])), BOX_COLOR, cv2.MARKER_CROSS, 4 * radius, t)
    for (x, y), label in zip(points, labels):
        center = (int(round(x)), int(round(y)))
        cv2.circle(out, center, radius, POS_COLOR if label == 1 else NEG_COLOR, -1)
        cv2.circle(out, center, radius, (255, 255, 255), max(1, t // 2))
    return out


def label_colors(labels: np.ndarray, rgb: np.ndarray | None = None, alpha: float = 0.55) -> np.ndarray:
    """Colour a label map (0 = background) with distinct hues, blended over ``rgb`` if given."""
    n = int(labels.max())
    rng = np.random.default_rng(0)
    palette = np.vstack([[0, 0, 0], rng.integers(40, 256, (max(n, 1), 3))]).astype(np.uint8)
    colored = palette[labels]
    if rgb is None:
        return colored
    out = rgb.copy()
    fg = labels > 0
    out[fg] = (rgb[fg] * (1 - alpha) + colored[fg] * alpha).astype(np.uint8)
    return out


def _thickness(rgb: np.ndarray) -> int:
    return max(1, round(max(rgb.shape[:2]) / 300))
