"""Image embeddings on disk, so benchmark runs, training and the app's examples encode each image once.

Each entry is the image encoder's output for one image (float32, 256 x 64 x 64, 4 MB) with the
geometry needed to map prompts and masks, stored under ``$MEDSAM_CACHE/embeddings/<name>/``
(default ``~/.cache/medsam/embeddings``; ``<name>`` is ``Predictor.embedding_name``: the encoder, plus
``@<backend>`` unless eager PyTorch) and keyed by a hash of the image content. Values are stored
exactly, so a cached embedding gives the same masks as a fresh one on the same backend.

``Predictor.set_image`` looks here before encoding; it writes here only when asked (``persist``:
the benchmark, training and the app's warm-up of its bundled examples), so images that visitors
upload are never written to disk.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from .decoding import Embedding
from .imaging import load_rgb
from .models import Geometry
from .settings import settings

if TYPE_CHECKING:
    from .predictor import Predictor


def cache_root() -> Path:
    return settings().cache / "embeddings"


def _path(name: str, key: str) -> Path:
    return cache_root() / name / f"{key.split(':')[1]}.npz"


def load_embedding(name: str, key: str, device: torch.device | str = "cpu") -> Embedding | None:
    """The stored embedding of image ``key`` for embedding name ``name``, or None."""
    path = _path(name, key)
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            geo = Geometry(tuple(int(v) for v in z["original"]), tuple(int(v) for v in z["resized"]),
                           int(z["input_size"]))
            return Embedding(key, torch.from_numpy(z["features"]).to(device), geo, float(z["encode_ms"]), cached=True)
    except (OSError, ValueError, KeyError):  # a damaged entry is encoded again (and rewritten)
        return None


def store_embedding(name: str, emb: Embedding) -> None:
    """Write ``emb`` for embedding name ``name`` atomically."""
    path = _path(name, emb.key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
        np.savez(tmp, features=emb.features.cpu().numpy(), original=np.array(emb.geometry.original),
                 resized=np.array(emb.geometry.resized), input_size=np.array(emb.geometry.input_size),
                 encode_ms=np.array(emb.encode_ms))
    os.replace(tmp.name, path)


def features_for(predictor: Predictor, rgb: np.ndarray) -> Embedding:
    """The image's embedding from memory or disk, or encoded now and stored on disk."""
    return predictor.set_image(rgb, persist=True)


def encode_all(predictor: Predictor, images: Iterable[Path]) -> dict[Path, Embedding]:
    """Embeddings for many image files (deduplicated), with a progress bar."""
    unique = list(dict.fromkeys(images))
    return {p: features_for(predictor, load_rgb(p))
            for p in tqdm(unique, desc=f"{predictor.embedding_name} features", unit="img")}
