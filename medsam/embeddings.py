"""Frozen-encoder features on disk, so benchmark runs and training encode each image only once.

Each entry is the image encoder's output for one image (float32, 256 x 64 x 64, 4 MB) with the
geometry needed to map prompts and masks, stored under ``$MEDSAM_CACHE/embeddings/<name>/``
(default ``~/.cache/medsam/embeddings``; ``<name>`` is ``Predictor.embedding_name``: the encoder, plus
``@<backend>`` unless eager PyTorch) and keyed by a hash of the image content. Values are stored
exactly, so a cached embedding gives the same masks as a fresh one on the same backend.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .imaging import load_rgb
from .models import Geometry
from .predictor import Embedding, Predictor, as_rgb, image_key
from .settings import settings


def cache_root() -> Path:
    return settings().cache / "embeddings"


def features_for(predictor: Predictor, rgb: np.ndarray) -> Embedding:
    """The image's embedding from the disk cache, or encoded now and stored (atomically)."""
    rgb = as_rgb(rgb)
    key = image_key(predictor.embedding_name, rgb)
    path = cache_root() / predictor.embedding_name / f"{key.split(':')[1]}.npz"
    if path.is_file():
        with np.load(path) as z:
            geo = Geometry(tuple(int(v) for v in z["original"]), tuple(int(v) for v in z["resized"]),
                           int(z["input_size"]))
            return Embedding(key, torch.from_numpy(z["features"]).to(predictor.device), geo,
                             float(z["encode_ms"]), cached=True)
    emb = predictor.set_image(rgb)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
        np.savez(tmp, features=emb.features.cpu().numpy(), original=np.array(emb.geometry.original),
                 resized=np.array(emb.geometry.resized), input_size=np.array(emb.geometry.input_size),
                 encode_ms=np.array(emb.encode_ms))
    os.replace(tmp.name, path)
    return emb


def encode_all(predictor: Predictor, images: Iterable[Path]) -> dict[Path, Embedding]:
    """Embeddings for many image files (deduplicated), with a progress bar."""
    unique = list(dict.fromkeys(images))
    return {p: features_for(predictor, load_rgb(p))
            for p in tqdm(unique, desc=f"{predictor.embedding_name} features", unit="img")}
