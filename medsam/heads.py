"""AutoSAM-style prompt-free heads on LiteMedSAM's frozen image encoder: the models, and how the app
finds, loads and runs saved ones (training and the label-efficiency study: ``medsam.finetune.heads``).

After Hu, Xu & Shi ("How to efficiently adapt large segmentation model (SAM) to medical images",
2023): keep SAM's encoder frozen and train a light head that segments a dataset's classes without
prompts. Four heads, each giving C class logits on the 256 x 256 grid of LiteMedSAM's padded input:

- ``decoder`` (:class:`PromptFreeDecoder`): SAM's mask decoder with C learned class tokens as its
  only tokens, initialised from LiteMedSAM's decoder;
- ``cnn`` (:class:`CNNHead`): two 3x3 convolutions and two transposed-convolution upsamplings;
- ``linear`` (:class:`LinearHead`): a 1x1 convolution, bilinear upsampling;
- ``unet`` (:class:`UNet`): a small U-Net on the preprocessed image itself, with no pretraining.

Classes are multi-label (sigmoid per class). A saved head is one file, ``<dataset>-<head>.pt``,
holding its weights and what it was trained on (``save_head``); the app lists those in
``heads_dir()`` and the small ones shipped in ``medsam/weights/heads`` (``find_heads``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.modeling import Sam, TwoWayTransformer
from segment_anything.modeling.common import LayerNorm2d
from segment_anything.modeling.mask_decoder import MLP
from segment_anything.modeling.prompt_encoder import PositionEmbeddingRandom
from torch import nn

from .checkpoints import checkpoint_dir
from .errors import InputError, MedsamError
from .models import LOW_RES, PROMPT_DIM, Geometry, Preprocessing
from .predictor import Predictor, as_rgb

ENCODER = "litemedsam"  # the frozen encoder whose features the heads read
PREPROCESSING = Preprocessing("litemedsam", LOW_RES)  # LiteMedSAM's input: also the U-Net's

# --- heads ----------------------------------------------------------------------------------


class PromptFreeDecoder(nn.Module):
    """SAM's mask decoder without prompts: C class tokens through the two-way transformer, then the
    decoder's upscaling and one hypernetwork MLP per class; all classes in one pass."""

    def __init__(self, num_classes: int, dim: int = PROMPT_DIM, mlp_dim: int = 2048) -> None:
        super().__init__()
        self.pe_layer = PositionEmbeddingRandom(dim // 2)  # gives the prompt encoder's get_dense_pe()
        # SAM adds its "no mask" embedding to the image embedding whenever there is no mask prompt:
        # kept as a learned constant so the pretrained transformer sees the inputs it was trained on.
        self.no_mask_embed = nn.Parameter(torch.zeros(dim))
        self.class_tokens = nn.Embedding(num_classes, dim)
        self.transformer = TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=mlp_dim, num_heads=8)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2), LayerNorm2d(dim // 4), nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2), nn.GELU())
        self.output_hypernetworks_mlps = nn.ModuleList(MLP(dim, dim, dim // 8, 3) for _ in range(num_classes))

    @torch.no_grad()
    def init_from(self, sam: Sam) -> PromptFreeDecoder:
        """Copy a SAM model's decoder (transformer, upscaling), positional encoding and no-mask
        embedding; every class starts as its single-mask output (mask token and MLP 0, the output
        LiteMedSAM was trained on)."""
        dec, prompt = sam.mask_decoder, sam.prompt_encoder
        self.transformer.load_state_dict(dec.transformer.state_dict())
        self.output_upscaling.load_state_dict(dec.output_upscaling.state_dict())
        self.pe_layer.load_state_dict(prompt.pe_layer.state_dict())
        self.no_mask_embed.copy_(prompt.no_mask_embed.weight[0])
        self.class_tokens.weight.copy_(dec.mask_tokens.weight[0].expand_as(self.class_tokens.weight))
        for mlp in self.output_hypernetworks_mlps:
            mlp.load_state_dict(dec.output_hypernetworks_mlps[0].state_dict())
        return self

    @torch.no_grad()
    def scale_logits(self, scale: Sequence[float]) -> None:
        """Multiply class c's logits by ``scale[c]``: they are linear in the last layer of its
        hypernetwork MLP."""
        for s, mlp in zip(scale, self.output_hypernetworks_mlps, strict=True):
            mlp.layers[-1].weight.mul_(s)
            mlp.layers[-1].bias.mul_(s)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        b, c, h, w = features.shape
        src = features + self.no_mask_embed.view(1, c, 1, 1)
        pe = self.pe_layer((h, w))[None].expand(b, -1, -1, -1)
        tokens = self.class_tokens.weight[None].expand(b, -1, -1)
        hs, src = self.transformer(src, pe, tokens)
        up = self.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
        hyper = torch.stack([mlp(hs[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], 1)
        return (hyper @ up.flatten(2)).view(b, -1, *up.shape[-2:])


class CNNHead(nn.Module):
    """Two 3x3 convolutions on the embedding, then two 2x transposed convolutions (64 -> 256)."""

    def __init__(self, num_classes: int, dim: int = PROMPT_DIM, width: int = 64) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(dim, width, 3, padding=1), LayerNorm2d(width), nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1), LayerNorm2d(width), nn.GELU(),
            nn.ConvTranspose2d(width, width // 2, 2, stride=2), nn.GELU(),
            nn.ConvTranspose2d(width // 2, width // 4, 2, stride=2), nn.GELU(),
            nn.Conv2d(width // 4, num_classes, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class LinearHead(nn.Module):
    """A 1x1 convolution on the embedding, upsampled bilinearly to 256 x 256."""

    def __init__(self, num_classes: int, dim: int = PROMPT_DIM) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, num_classes, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.conv(features), size=(LOW_RES, LOW_RES), mode="bilinear", align_corners=False)


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(4, cout), nn.GELU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(4, cout), nn.GELU())


class UNet(nn.Module):
    """A small U-Net (``depth`` poolings, ``width`` channels doubling per level) on the 256 px image."""

    def __init__(self, num_classes: int, width: int = 16, depth: int = 3) -> None:
        super().__init__()
        chans = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList(_double_conv(cin, cout) for cin, cout in zip([3, *chans], chans))
        self.up = nn.ModuleList(nn.ConvTranspose2d(2 * c, c, 2, stride=2) for c in chans[:-1])
        self.fuse = nn.ModuleList(_double_conv(2 * c, c) for c in chans[:-1])
        self.out = nn.Conv2d(width, num_classes, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        skips = []
        x = image
        for i, block in enumerate(self.down):
            x = block(F.max_pool2d(x, 2) if i else x)
            skips.append(x)
        x = skips.pop()
        for up, fuse, skip in reversed(list(zip(self.up, self.fuse, skips))):
            x = fuse(torch.cat([skip, up(x)], 1))
        return self.out(x)


HEADS: dict[str, type[nn.Module]] = {"decoder": PromptFreeDecoder, "cnn": CNNHead, "linear": LinearHead,
                                     "unet": UNet}
KINDS = tuple(HEADS)


def build_head(kind: str, num_classes: int, sam: Sam | None = None) -> nn.Module:
    """A new head; ``decoder`` is initialised from ``sam``'s decoder when given, else random."""
    if kind not in HEADS:
        raise MedsamError(f"Unknown head '{kind}'; choose from {', '.join(KINDS)}.")
    model = HEADS[kind](num_classes)
    if sam is not None and isinstance(model, PromptFreeDecoder):
        model.init_from(sam)
    return model


@torch.inference_mode()
def head_logits(model: nn.Module, x: torch.Tensor, geo: Geometry) -> torch.Tensor:
    """Logits (B, C, H, W) at the original size for the head inputs ``x`` of B images of geometry ``geo``."""
    return PREPROCESSING.upscale(model(x), geo)



def predict_head(model: nn.Module, kind: str, rgb: np.ndarray, predictor: Predictor) -> np.ndarray:
    """Prompt-free segmentation of the head's classes: (C, H, W) bool masks at the image's size.

    ``predictor``: one on LiteMedSAM's encoder (the head's input; its in-memory embedding cache is
    used); unused by ``unet``.
    """
    rgb = as_rgb(rgb)
    if kind == "unet":
        x, geo = PREPROCESSING.image(rgb)
    else:
        if predictor.encoder_name != ENCODER:
            raise InputError(f"This head reads {ENCODER} features, not {predictor.encoder_name}'s.")
        emb = predictor.set_image(rgb)
        x, geo = emb.features.cpu(), emb.geometry
    return (head_logits(model.eval(), x, geo)[0] > 0).numpy()


SHIPPED_HEADS = Path(__file__).resolve().parent / "weights" / "heads"


def heads_dir() -> Path:
    """Where ``--save`` writes heads by default and the app looks first."""
    return checkpoint_dir() / "heads"


def find_heads() -> dict[str, Path]:
    """Saved heads by label "<dataset>: <head> head", from ``heads_dir()`` then the shipped ones."""
    found: dict[str, Path] = {}
    for folder in (heads_dir(), SHIPPED_HEADS):
        for path in sorted(folder.glob("*-*.pt")):
            dataset, kind = path.stem.rsplit("-", 1)
            if kind in HEADS:
                found.setdefault(f"{dataset}: {kind} head", path)
    return found


def save_head(model: nn.Module, kind: str, classes: Sequence[str], path: str | os.PathLike,
              trained_on: str = "", modality: str = "") -> Path:
    """Write the weights and metadata as one file that loads with ``torch.load(weights_only=True)``;
    ``trained_on`` says in words what it was trained on and ``modality`` on which kind of image (both
    shown in the app: a head means nothing on other kinds of images)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    torch.save({"kind": kind, "classes": list(classes), "encoder": ENCODER, "trained_on": trained_on,
                "modality": modality,
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, tmp)
    tmp.replace(path)
    return path


@dataclass(frozen=True)
class SavedHead:
    model: nn.Module
    kind: str
    classes: list[str]
    trained_on: str
    modality: str = ""  # the kind of image it was trained on ("" if not recorded)


def load_head(path: str | os.PathLike) -> SavedHead:
    """Read a head written by :func:`save_head` (model in eval mode)."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model = build_head(saved["kind"], len(saved["classes"]))
        model.load_state_dict(saved["state_dict"])
    except (OSError, RuntimeError, KeyError, TypeError, EOFError, ValueError, MedsamError) as exc:
        raise MedsamError(f"{Path(path).name} is not a head written by save_head.") from exc
    return SavedHead(model.eval(), saved["kind"], list(saved["classes"]), str(saved.get("trained_on", "")),
                     str(saved.get("modality", "")))
