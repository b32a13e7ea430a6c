"""Shared fixtures: the real benchmark folder (when configured) and tiny random SAM models."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from medsam.checkpoints import Checkpoint
from medsam.models import ModelSpec, Preprocessing, build_sam_vit

DATA = os.environ.get("MEDSAM_DATA")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real benchmark folder (manifest layout); tests needing it skip when it is absent."""
    if not DATA or not (Path(DATA) / "manifest.csv").is_file():
        pytest.skip("MEDSAM_DATA does not point to a benchmark folder with manifest.csv")
    return Path(DATA)


@pytest.fixture(scope="session")
def manifest(data_dir: Path) -> pd.DataFrame:
    return pd.read_csv(data_dir / "manifest.csv")


def build_tiny_sam() -> torch.nn.Module:
    """A SAM-architecture model with a one-block, 32-wide ViT: same code paths, random weights."""
    torch.manual_seed(0)
    return build_sam_vit(embed_dim=32, depth=1, num_heads=2, global_attn=(0,))


def tiny_spec(folder: Path, name: str = "tiny_sam", sha256: str | None = None) -> ModelSpec:
    """Write a random tiny SAM checkpoint to ``folder`` and return a registry entry for it."""
    path = folder / f"{name}.pth"
    if not path.exists():
        torch.save(build_tiny_sam().state_dict(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    ckpt = Checkpoint(path.name, f"http://127.0.0.1:1/{path.name}", path.stat().st_size, sha256 or digest)
    return ModelSpec(name, "Tiny random SAM (tests)", "sam", "ViT-tiny", "zero-shot",
                     Preprocessing("sam", 1024), ckpt, build_tiny_sam)
