"""What the Dashboard calls prompt strategies and models: the one place for the names people read.

The data keep the benchmark's strategy names (``box_jitter_20``); figures, filters and the rows table
show ``strategy_name`` ("box jittered 10-20 px"), with the benchmark name in the hover. Strategies are
grouped by what the user gives: a box, clicks, or no prompt (automatic); ``STRATEGY_ORDER`` follows the
groups. Models are named for what they are: SAM and MobileSAM are zero-shot, MedSAM and LiteMedSAM
were finetuned on medical images by their authors, and ``litemedsam_ft`` is our own finetune of
LiteMedSAM's prompt encoder and mask decoder. A name not listed here is shown as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..strategies import SHOWN_ORDER, STRATEGIES

STRATEGY_NAMES = {name: STRATEGIES[name].shown for name in SHOWN_ORDER}
STRATEGY_GROUP = {name: STRATEGIES[name].group for name in SHOWN_ORDER}
STRATEGY_ORDER = SHOWN_ORDER


@dataclass(frozen=True)
class ModelName:
    """``label`` says what the model is (legends, filters, sentences); ``short`` is for tight spots
    near a legend or a sentence that gives the label; ``about`` is one clause for the introduction."""

    label: str
    short: str
    about: str


_SAM = "Meta's Segment Anything, trained on natural images only"
MODEL_NAMES = {
    "sam_vit_b": ModelName("SAM ViT-B (zero-shot)", "SAM ViT-B", _SAM),
    "sam_vit_l": ModelName("SAM ViT-L (zero-shot)", "SAM ViT-L", _SAM),
    "sam_vit_h": ModelName("SAM ViT-H (zero-shot)", "SAM ViT-H", _SAM),
    "mobilesam": ModelName("MobileSAM (zero-shot)", "MobileSAM",
                           "SAM distilled into a small TinyViT, natural images only"),
    "medsam_vit_b": ModelName("MedSAM (SAM finetuned on medical images)", "MedSAM",
                              "SAM ViT-B finetuned on medical images by its authors, with boxes"),
    "litemedsam": ModelName("LiteMedSAM as published (medical)", "LiteMedSAM",
                            "MedSAM distilled into a small TinyViT by its authors: a medical model, trained with "
                            "boxes only, not zero-shot"),
    "litemedsam_ft": ModelName("LiteMedSAM + our decoder finetune (litemedsam_ft)", "our finetune",
                               "LiteMedSAM's image encoder with a prompt encoder and mask decoder that we finetuned "
                               "on the benchmark's training pairs, with boxes and clicks"),
}


def strategy_name(raw: str) -> str:
    """The name shown for a benchmark strategy, e.g. 'box_jitter_20' -> 'box jittered 10-20 px'."""
    return STRATEGY_NAMES.get(str(raw), str(raw))


def model_label(raw: str) -> str:
    """What a model is, e.g. 'litemedsam' -> 'LiteMedSAM as published (medical)'."""
    name = MODEL_NAMES.get(str(raw))
    return name.label if name else str(raw)


def model_about(raw: str) -> str:
    """One clause on what a model is and how it was trained ('' when not known)."""
    name = MODEL_NAMES.get(str(raw))
    return name.about if name else ""


def model_short(raw: str) -> str:
    """A model's name in a few words, e.g. 'litemedsam_ft' -> 'our finetune'."""
    name = MODEL_NAMES.get(str(raw))
    return name.short if name else str(raw)


def model_order(models: Iterable[str]) -> list[str]:
    """Models in ``MODEL_NAMES`` order (zero-shot, medical, ours), others after them, sorted."""
    models = set(map(str, models))
    known = [m for m in MODEL_NAMES if m in models]
    return known + sorted(models - set(known))
