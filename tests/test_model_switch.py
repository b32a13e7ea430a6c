"""Switching models: full-size exports, one export at a time, models bounded in memory, the status while a
big encoder runs, and the warmed embedding cache seen in a browser."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.model_perf import iou, parity_prompts
from conftest import build_tiny_sam, chromium, served, tiny_spec
from medsam import backends, models, predictor
from medsam.checkpoints import Checkpoint
from medsam.gallery import all_examples, bundled_examples
from medsam.gallery import data_dir as configured_data
from medsam.imaging import load_rgb
from medsam.models import REGISTRY, build_mobilesam, get_spec
from medsam.precision import resolve_precision
from medsam.predictor import EmbeddingCache, Predictor, load_model, loaded_models
from medsam.session import run_model


@pytest.mark.parametrize("precision", ["f32", "auto"])
def test_full_size_random_vit_b_on_the_default_backend_matches_eager(precision: str) -> None:
    """SAM ViT-B at 1024 px with seeded random weights, exported once (kept in the checkpoint folder
    between runs, keyed by the weights), against eager PyTorch on the parity prompts: in f32, and in
    the default precision (bf16 on a CPU that computes it natively: within bfloat16 rounding)."""
    spec = get_spec("sam_vit_b")
    torch.manual_seed(0)
    model = spec.build().eval()
    graph = Predictor(spec, model, cache=EmbeddingCache(0), precision=precision)
    assert graph.backend == backends.available()[0] != "torch"
    bf16 = resolve_precision(precision) == "bf16"
    eager = Predictor(spec, model, cache=EmbeddingCache(0), backend="torch")
    rgb = load_rgb(bundled_examples()[0].image)
    g_emb, e_emb = graph.set_image(rgb), eager.set_image(rgb)
    scale = float(e_emb.features.abs().max())
    assert float((g_emb.features - e_emb.features).abs().max()) < (3e-2 if bf16 else 1e-3) * scale
    ious = []
    for group in parity_prompts(*rgb.shape[:2]):
        for want, got in zip(eager.predict_batch(group, e_emb), graph.predict_batch(group, g_emb)):
            ious += [iou(w, g) for w, g in zip(want.masks, got.masks)]
    assert len(ious) == 24 and np.mean(ious) > (0.98 if bf16 else 0.99) and min(ious) > 0.95, ious


def test_two_exports_of_one_graph_at_once_run_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two visitors choosing the same new model at the same moment: one export, both get the file."""
    monkeypatch.setenv("MEDSAM_CHECKPOINTS", str(tmp_path))
    real, calls = torch.onnx.export, []

    def slow_export(*args, **kwargs):
        calls.append(1)
        time.sleep(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", slow_export)
    model, results = build_tiny_sam(), []
    threads = [threading.Thread(target=lambda: results.append(backends.export_graphs(model, 1024))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 2 and results[0] == results[1]  # one encoder and one decoder, not four graphs
    assert all(p.is_file() for p in results[0]) and not list(tmp_path.glob("exported/.export-*"))


def _register_tiny(folder: Path, monkeypatch: pytest.MonkeyPatch, names: list[str]) -> None:
    monkeypatch.setenv("MEDSAM_CHECKPOINTS", str(folder))
    for name in names:
        monkeypatch.setitem(models.REGISTRY, name, tiny_spec(folder, name))


def test_loaded_models_are_bounded_by_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _register_tiny(tmp_path, monkeypatch, ["tiny_a", "tiny_b", "tiny_c"])
    monkeypatch.setattr(predictor, "_MODELS", predictor._Models())
    first = load_model("tiny_a", backend="onnxruntime")
    assert first.model.image_encoder.__class__.__name__ == "_ExportedEncoder"  # the graph holds those weights
    size = first.nbytes
    monkeypatch.setenv("MEDSAM_MODELS_MB", str(2.5 * size / 2**20))  # room for two
    load_model("tiny_b", backend="onnxruntime")
    assert loaded_models() == ["tiny_a", "tiny_b"]
    assert load_model("tiny_a", backend="onnxruntime") is first  # used again: now the most recent
    load_model("tiny_c", backend="onnxruntime")
    assert loaded_models() == ["tiny_a", "tiny_c"]  # tiny_b was the least recently used


def test_a_slow_load_does_not_hold_up_a_loaded_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _register_tiny(tmp_path, monkeypatch, ["tiny_a", "tiny_slow"])
    monkeypatch.setattr(predictor, "_MODELS", predictor._Models())
    load_model("tiny_a", backend="torch")
    real = predictor.build_model
    started = threading.Event()

    def slow_build(spec, download=None):
        if spec.name == "tiny_slow":
            started.set()
            time.sleep(3.0)
        return real(spec, download)

    monkeypatch.setattr(predictor, "build_model", slow_build)
    slow = threading.Thread(target=load_model, args=("tiny_slow",), kwargs={"backend": "torch"})
    slow.start()
    started.wait(5)
    t0 = time.perf_counter()
    load_model("tiny_a", backend="torch")
    assert time.perf_counter() - t0 < 1.0
    slow.join()


def test_the_status_says_what_a_slow_step_is_doing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medsam.decoding import Prompt

    _register_tiny(tmp_path, monkeypatch, ["tiny_a"])
    monkeypatch.setenv("MEDSAM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(predictor, "_MODELS", predictor._Models())
    rgb = np.random.default_rng(5).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    heard: list[str] = []

    def notify(text: str, seconds: float | None) -> None:
        heard.append(text)

    run = run_model("tiny_a", rgb, Prompt(box=np.array([5.0, 5.0, 40.0, 30.0])), notify=notify)
    assert run.error is None and heard[0].startswith("Loading Tiny random SAM")
    assert heard[1].startswith("Encoding the image with Tiny random SAM")
    heard.clear()
    run_model("tiny_a", rgb, Prompt(box=np.array([5.0, 5.0, 40.0, 30.0])), notify=notify)
    assert heard == []  # loaded and encoded: nothing slow to announce


@pytest.fixture(scope="module")
def switch_app(tmp_path_factory: pytest.TempPathFactory):
    """The app with a second ready model whose encoder differs (MobileSAM's architecture, seeded
    random weights), its examples' embeddings warmed as at start-up."""
    from medsam.ui import build, default_models
    from medsam.warmup import warm, warm_order

    tmp = tmp_path_factory.mktemp("switch")
    mp = pytest.MonkeyPatch()
    mp.setenv("MEDSAM_CACHE", str(tmp / "cache"))
    mp.setenv("MEDSAM_CHECKPOINTS", str(tmp))
    torch.manual_seed(0)
    path = tmp / "mobile_sam_random.pt"
    torch.save(build_mobilesam().state_dict(), path)
    ckpt = Checkpoint(path.name, None, path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    mp.setitem(REGISTRY, "mobilesam_random", dataclasses.replace(
        REGISTRY["mobilesam"], name="mobilesam_random", title="MobileSAM with random weights (test)", checkpoint=ckpt,
        ignore_keys=()))
    order = warm_order(default_models())
    assert order[-1] == "mobilesam_random"  # ready, and the largest checkpoint: warmed last
    warm(all_examples(configured_data())[:1], order)
    try:
        with served(build(configured_data())) as url:
            yield url
    finally:
        mp.undo()


def test_browser_switching_models_on_an_example_uses_the_warmed_cache(switch_app: str) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(switch_app)
        page.wait_for_function("() => document.querySelector('#status')?.innerText.includes('DICE')", timeout=60_000)
        page.locator("#model input").click()
        t0 = time.perf_counter()
        page.get_by_role("option").filter(has_text="MobileSAM with random weights (test)").click()
        page.wait_for_function("() => document.querySelector('#status')?.innerText"
                               ".includes('MobileSAM with random weights (test):')", timeout=60_000)
        elapsed = time.perf_counter() - t0
        line = next(ln for ln in page.locator("#status").inner_text().splitlines() if "random weights" in ln)
        assert "embedding cached" in line, line  # the encoder did not run: only the decoder
        decode_ms = float(line.split("decoded in ")[1].split(" ms")[0])
        assert decode_ms < 1000 and elapsed < 5.0, (line, elapsed)
        page.wait_for_function("() => { const i = document.querySelector('#canvas img');"
                               " return i && i.complete && i.naturalWidth > 0; }")


def test_embeddings_on_disk_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The warm-up persists the examples' embeddings; a visitor's upload is never written to disk, and
    a persisted embedding is read back (by a fresh process's cache) instead of encoding again."""
    monkeypatch.setenv("MEDSAM_CACHE", str(tmp_path / "cache"))
    spec = tiny_spec(tmp_path)
    pred = Predictor(spec, build_tiny_sam(), cache=EmbeddingCache(0), backend="torch")
    upload, example = (np.random.default_rng(s).integers(0, 255, (60, 70, 3), dtype=np.uint8) for s in (1, 2))
    pred.set_image(upload)
    assert not list((tmp_path / "cache").rglob("*.npz"))
    first = pred.set_image(example, persist=True)
    assert not first.cached and len(list((tmp_path / "cache").rglob("*.npz"))) == 1
    again = Predictor(spec, build_tiny_sam(), cache=EmbeddingCache(0), backend="torch")
    assert again.is_cached(example) and not again.is_cached(upload)
    monkeypatch.setattr(again.engine, "encode", lambda x: pytest.fail("encoded again"))
    read = again.set_image(example)
    assert read.cached and torch.equal(read.features, first.features) and read.geometry == first.geometry
