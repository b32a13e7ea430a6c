"""What the mask decoder takes and gives: an encoded image (``Embedding``), a prompt (``Prompt``, checked
here), a result (``Prediction``), and the eager PyTorch decoder call (``decode_prompts``).

Shared by ``medsam.predictor`` and ``medsam.backends`` (and training, which calls ``decode_prompts``
directly because it is differentiable). Coordinates are in original-image pixels as (x, y); masks and
logits are ``(K, H, W)`` / ``(K, 256, 256)``, best first once the predictor has sorted them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import InputError
from .models import LOW_RES, Geometry

MAX_POINTS = 100  # per prompt; more is refused rather than slowing everyone down


@dataclass
class Embedding:
    """An encoded image: the encoder output plus the geometry to map prompts and masks."""

    key: str
    features: torch.Tensor  # (1, 256, 64, 64)
    geometry: Geometry
    encode_ms: float
    cached: bool = False

    @property
    def nbytes(self) -> int:
        return self.features.element_size() * self.features.nelement()


@dataclass
class Prompt:
    """One prompt in original-image pixels: points (N, 2) as (x, y) with labels 1/0, and/or a box."""

    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    box: np.ndarray | None = None
    mask_input: np.ndarray | None = None  # (256, 256) low-res logits from a previous prediction
    multimask: bool = True

    @classmethod
    def make(cls, points: Any = None, labels: Any = None, box: Any = None, mask_input: Any = None,
             multimask: bool = True) -> Prompt:
        """Build from lists/arrays/JSON-like values, checking types and lengths."""
        try:
            pts = None if points is None or len(points) == 0 else np.asarray(points, np.float64).reshape(-1, 2)
            lab = None if labels is None or len(labels) == 0 else np.asarray(labels, np.float64).reshape(-1)
            bx = None if box is None or len(box) == 0 else np.asarray(box, np.float64).reshape(4)
            mi = None if mask_input is None else np.asarray(mask_input, np.float32).reshape(LOW_RES, LOW_RES)
        except OverflowError as exc:  # an integer too large for a float
            raise InputError("Prompt coordinates must be finite numbers.") from exc
        except (TypeError, ValueError) as exc:
            raise InputError("Prompts must be numbers: points as [[x, y], ...], labels as [1, 0, ...], "
                             "a box as [x0, y0, x1, y1] and a mask input (Python API only) as the "
                             "256x256 low-res logits of an earlier prediction.") from exc
        if pts is not None:
            if len(pts) > MAX_POINTS:
                raise InputError(f"{len(pts)} points were given; at most {MAX_POINTS} are allowed per prompt.")
            if lab is None:
                lab = np.ones(len(pts))
            if len(lab) != len(pts):
                raise InputError(f"{len(pts)} points but {len(lab)} "
                                 f"{'label was' if len(lab) == 1 else 'labels were'} given; give one label per point.")
            if not np.isin(lab, (0, 1)).all():
                raise InputError("Point labels must be 1 (object) or 0 (background).")
        elif lab is not None:
            raise InputError("Labels were given without points.")
        for arr in (pts, bx, mi):
            if arr is not None and not np.isfinite(arr).all():
                raise InputError("Prompt coordinates must be finite numbers.")
        return cls(pts, lab, bx, mi, bool(multimask))

    def checked(self, height: int, width: int) -> Prompt:
        """Validate against the image size; clip a box that sticks out, refuse what cannot work."""
        if self.points is None and self.box is None:
            raise InputError("Give at least one point or a box.")
        if self.points is not None:
            bad = (self.points[:, 0] < 0) | (self.points[:, 0] >= width) | \
                  (self.points[:, 1] < 0) | (self.points[:, 1] >= height)
            if bad.any():
                x, y = self.points[bad][0]
                raise InputError(f"The point ({x:g}, {y:g}) is outside the {width}x{height} image.")
        box = self.box
        if box is not None:
            x0, y0, x1, y1 = box
            if x1 < x0 or y1 < y0:
                raise InputError(f"The box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is inverted; give it as "
                                 f"[x0, y0, x1, y1] with x0 < x1 and y0 < y1.")
            box = np.array([np.clip(x0, 0, width - 1), np.clip(y0, 0, height - 1),
                            np.clip(x1, 0, width - 1), np.clip(y1, 0, height - 1)])
            if box[2] <= box[0] or box[3] <= box[1]:
                raise InputError(f"The box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) has no area inside the "
                                 f"{width}x{height} image.")
        return Prompt(self.points, self.labels, box, self.mask_input, self.multimask)


@dataclass
class Prediction:
    """Masks at the original image size, best first by the model's predicted IoU."""

    masks: np.ndarray  # (K, H, W) bool
    scores: np.ndarray  # (K,) predicted IoU
    logits: np.ndarray  # (K, 256, 256) low-res logits; feed logits[i] back as mask_input
    decode_ms: float


def decode_prompts(model: torch.nn.Module, prompts: list[Prompt], emb: Embedding) -> tuple[torch.Tensor, torch.Tensor]:
    """One prompt-encoder + mask-decoder call for checked prompts of identical structure.

    Returns low-res logits (B, C, 256, 256) and predicted IoU (B, C), in the decoder's order.
    Differentiable: training calls it directly.
    """
    sparse, dense = prompt_embeddings(model, prompts, emb)
    return model.mask_decoder(
        image_embeddings=emb.features, image_pe=model.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=prompts[0].multimask)


def prompt_embeddings(model: torch.nn.Module, prompts: list[Prompt],
                      emb: Embedding) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompt encoder's sparse and dense embeddings of checked prompts of identical structure."""
    device = emb.features.device
    scale = torch.as_tensor(emb.geometry.scale, dtype=torch.float32, device=device)
    first = prompts[0]
    points = boxes = masks = None
    if first.points is not None:
        coords = torch.as_tensor(np.stack([p.points for p in prompts]), dtype=torch.float32, device=device) * scale
        labels = torch.as_tensor(np.stack([p.labels for p in prompts]), dtype=torch.int64, device=device)
        points = (coords, labels)
    if first.box is not None:
        boxes = torch.as_tensor(np.stack([p.box for p in prompts]), dtype=torch.float32,
                                device=device) * scale.repeat(2)
    if first.mask_input is not None:
        masks = torch.as_tensor(np.stack([p.mask_input for p in prompts])[:, None], device=device)
    return model.prompt_encoder(points=points, boxes=boxes, masks=masks)
