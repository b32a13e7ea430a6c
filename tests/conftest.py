"""Shared fixtures: the real benchmark folder (when configured), tiny random SAM models, and the app
served in this process with a chromium to drive it."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medsam.checkpoints import Checkpoint
from medsam.models import ModelSpec, Preprocessing, build_sam_vit

DATA = os.environ.get("MEDSAM_DATA")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where browser tests save full-page screenshots: ``MEDSAM_SCREENSHOTS`` if set (``assets``
    refreshes the README's), else a temporary folder, so a test run leaves the checkout unchanged."""
    folder = Path(os.environ.get("MEDSAM_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(demo) -> Iterator[str]:
    """The app (an unqueued ``gr.Blocks``) queued and launched on a free local port; yields its URL."""
    from medsam.ui import launch_kwargs, queue_kwargs

    demo = demo.queue(**queue_kwargs())
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                            quiet=True, **launch_kwargs())
    try:
        yield url
    finally:
        demo.close()


@contextlib.contextmanager
def chromium():
    """Debian's chromium through Playwright (a failure in CI when it is missing, a skip elsewhere)."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Debian chromium is required in CI (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(autouse=True)
def _embedding_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never write to the user's embedding cache."""
    monkeypatch.setenv("MEDSAM_CACHE", str(tmp_path_factory.getbasetemp() / "medsam-cache"))


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


def phantom() -> tuple[np.ndarray, np.ndarray]:
    """The Shepp-Logan phantom (bundled with scikit-image) as gray uint8, and its largest
    intensity-0.3 ellipse as ground truth: a synthetic image with an exact mask, safe to commit."""
    from scipy import ndimage
    from skimage.data import shepp_logan_phantom

    p = np.round(shepp_logan_phantom(), 3)
    labels, _ = ndimage.label(p == 0.298)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return (p * 255).astype(np.uint8), labels == sizes.argmax()


@pytest.fixture(scope="session")
def phantom_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[int]]:
    """Phantom image and mask as PNG files, plus the mask's tight box (x0, y0, x1, y1)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("phantom")
    image, mask = phantom()
    Image.fromarray(image).save(folder / "phantom.png")
    Image.fromarray((mask * 255).astype(np.uint8)).save(folder / "phantom_mask.png")
    ys, xs = np.nonzero(mask)
    box = [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]
    return folder / "phantom.png", folder / "phantom_mask.png", box


def bomb_png(side: int = 30000) -> bytes:
    """A valid side x side 1-bit PNG of a few hundred bytes: decoding it would need side**2 pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 100_000, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
