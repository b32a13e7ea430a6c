"""Every environment variable medsam reads (the ``MEDSAM_*`` ones, ``SPACE_ID``, ``PYTHONPATH``), read in
this one place into a frozen ``Settings``.

``settings()`` reads the environment when called (so a changed variable takes effect at the next
call) and caches the result per set of values. A bad value raises ``ConfigError`` with one sentence
naming the variable and what it allows. Nothing else in the package reads ``os.environ``; settings
are passed on as arguments (``load_model(..., backend=, threads=, precision=)``), never by writing
environment variables.

| variable | meaning | default |
|---|---|---|
| MEDSAM_CHECKPOINTS | folder of checkpoints (and exported graphs, saved heads) | ``~/.cache/medsam`` |
| MEDSAM_DOWNLOAD | fetch missing checkpoints (1/true/yes or 0/false/no) | on a Hugging Face Space (``SPACE_ID`` set) |
| MEDSAM_CACHE | root of the on-disk embedding cache | ``~/.cache/medsam`` |
| MEDSAM_CACHE_MB | image embeddings kept in memory, in MB | 256 |
| MEDSAM_MODELS_MB | loaded models kept in memory (weights and compiled graphs), in MB | 8192 |
| MEDSAM_BACKEND | auto, openvino, onnxruntime or torch | auto |
| MEDSAM_THREADS | inference threads | torch's default (one per core) |
| MEDSAM_PRECISION | auto, f32 or bf16 (OpenVINO; auto: bf16 where the CPU computes it natively) | auto |
| MEDSAM_MAX_PIXELS | largest image or volume slice, in pixels | 50,000,000 |
| MEDSAM_MAX_UPLOAD_MB | largest upload, in MB | 200 |
| MEDSAM_DATA | benchmark data folder (examples, tests) | none |
| MEDSAM_VOLUMES | volumes folder (tests, tools) | none |
| PYTHONPATH | extra import folders, passed on to the workers of a local Ray instance | none |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import MedsamError

BACKEND_CHOICES = ("auto", "openvino", "onnxruntime", "torch")
PRECISION_CHOICES = ("auto", "f32", "bf16")
VARIABLES = ("MEDSAM_CHECKPOINTS", "MEDSAM_DOWNLOAD", "MEDSAM_CACHE", "MEDSAM_CACHE_MB", "MEDSAM_MODELS_MB",
             "MEDSAM_BACKEND", "MEDSAM_THREADS", "MEDSAM_PRECISION", "MEDSAM_MAX_PIXELS", "MEDSAM_MAX_UPLOAD_MB",
             "MEDSAM_DATA", "MEDSAM_VOLUMES", "SPACE_ID", "PYTHONPATH")


class ConfigError(MedsamError):
    """A MEDSAM_* variable has a value it does not allow."""


@dataclass(frozen=True)
class Settings:
    checkpoints: Path
    checkpoints_configured: bool  # MEDSAM_CHECKPOINTS was set (pages then name the variable, not a path)
    download: bool
    on_space: bool
    cache: Path
    cache_mb: float
    models_mb: float
    backend: str
    threads: int | None
    precision: str
    max_pixels: int
    max_upload_mb: int
    data: Path | None
    volumes: Path | None
    python_path: tuple[str, ...]  # PYTHONPATH's entries, for child processes


def settings() -> Settings:
    """The current settings (re-read when the environment changed)."""
    return _read(tuple(os.environ.get(name) for name in VARIABLES))


def _positive(name: str, raw: str | None, default: float, kind: type = int) -> float:
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = 0
    if not value > 0:
        what = "a positive whole number" if kind is int else "a positive number"
        raise ConfigError(f"{name} must be {what}, not {raw!r}.")
    return value


def _choice(name: str, raw: str | None, choices: tuple[str, ...], default: str) -> str:
    value = (raw or default).strip().lower() or default
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {raw!r}.")
    return value


def _flag(name: str, raw: str | None, default: bool) -> bool:
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise ConfigError(f"{name} must be 1, true or yes to turn it on, or 0, false or no to turn it off, not {raw!r}.")


def _folder(raw: str | None) -> Path | None:
    return Path(raw).expanduser() if raw and raw.strip() else None


@lru_cache(maxsize=8)
def _read(values: tuple[str | None, ...]) -> Settings:
    env = dict(zip(VARIABLES, values))
    on_space = env["SPACE_ID"] is not None
    threads = env["MEDSAM_THREADS"]
    return Settings(
        checkpoints=_folder(env["MEDSAM_CHECKPOINTS"]) or Path("~/.cache/medsam").expanduser(),
        checkpoints_configured=_folder(env["MEDSAM_CHECKPOINTS"]) is not None,
        download=_flag("MEDSAM_DOWNLOAD", env["MEDSAM_DOWNLOAD"], on_space),
        on_space=on_space,
        cache=_folder(env["MEDSAM_CACHE"]) or Path("~/.cache/medsam").expanduser(),
        cache_mb=_positive("MEDSAM_CACHE_MB", env["MEDSAM_CACHE_MB"], 256.0, float),
        models_mb=_positive("MEDSAM_MODELS_MB", env["MEDSAM_MODELS_MB"], 8192.0, float),
        backend=_choice("MEDSAM_BACKEND", env["MEDSAM_BACKEND"], BACKEND_CHOICES, "auto"),
        threads=None if threads is None or not threads.strip() else int(_positive("MEDSAM_THREADS", threads, 1)),
        precision=_choice("MEDSAM_PRECISION", env["MEDSAM_PRECISION"], PRECISION_CHOICES, "auto"),
        max_pixels=int(_positive("MEDSAM_MAX_PIXELS", env["MEDSAM_MAX_PIXELS"], 50_000_000)),
        max_upload_mb=int(_positive("MEDSAM_MAX_UPLOAD_MB", env["MEDSAM_MAX_UPLOAD_MB"], 200)),
        data=_folder(env["MEDSAM_DATA"]),
        volumes=_folder(env["MEDSAM_VOLUMES"]),
        python_path=tuple(p for p in (env["PYTHONPATH"] or "").split(os.pathsep) if p),
    )
