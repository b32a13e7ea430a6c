"""Backends: exported graphs (OpenVINO, ONNX Runtime) give the masks eager PyTorch gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench.model_perf import parity_prompts
from conftest import build_tiny_sam, tiny_spec
from medsam import backends, load_model, precision
from medsam.decoding import Embedding, Prompt
from medsam.errors import ModelUnavailableError
from medsam.imaging import load_mask, load_rgb
from medsam.metrics import dice
from medsam.models import Preprocessing, build_mobilesam
from medsam.predictor import Predictor

GRAPHS = ["openvino", "onnxruntime"]


@pytest.fixture()
def exports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Exported graphs of random test models go to a temporary checkpoint folder."""
    monkeypatch.setenv("MEDSAM_CHECKPOINTS", str(tmp_path))
    return tmp_path / "exported"


def test_resolve_prefers_the_fastest_and_obeys_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDSAM_BACKEND", raising=False)
    assert backends.available() == ["openvino", "onnxruntime", "torch"]
    assert backends.resolve() == "openvino"
    assert backends.resolve(device="cuda") == "torch"
    monkeypatch.setenv("MEDSAM_BACKEND", "onnxruntime")
    assert backends.resolve() == "onnxruntime"
    assert backends.resolve("torch") == "torch"
    with pytest.raises(ModelUnavailableError, match="Unknown backend 'tensorrt'; choose one of auto"):
        backends.resolve("tensorrt")


def test_auto_precision_is_openvinos_choice_and_measurements_stay_f32(monkeypatch: pytest.MonkeyPatch) -> None:
    import openvino as ov

    native = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT") == ov.Type.bf16
    monkeypatch.delenv("MEDSAM_PRECISION", raising=False)
    assert precision.resolve_precision() == ("bf16" if native else "f32")
    assert precision.variant_tag("openvino") == ("openvino-bf16" if native else "openvino")
    assert precision.variant_tag("onnxruntime") == "onnxruntime" and precision.measured_precision() == "f32"
    monkeypatch.setattr(precision, "_openvino_default_precision", lambda: "bf16")  # a CPU with bf16
    assert precision.resolve_precision("auto") == "bf16" and precision.resolve_precision("f32") == "f32"
    assert precision.measured_precision() == "f32", "benchmarks must not depend on the CPU"
    monkeypatch.setenv("MEDSAM_PRECISION", "bf16")
    assert precision.measured_precision() == "bf16" and precision.resolve_precision() == "bf16"
    monkeypatch.setenv("MEDSAM_PRECISION", "f32")
    assert precision.resolve_precision() == "f32" and precision.variant_tag("openvino") == "openvino"


def test_a_missing_backend_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "available", lambda: ["torch"])
    with pytest.raises(ModelUnavailableError, match="pip install openvino"):
        backends.resolve("openvino")
    assert backends.resolve("auto") == "torch"


@pytest.mark.parametrize("backend", GRAPHS)
def test_random_sam_vit_graphs_match_eager(backend: str, exports: Path, tmp_path: Path) -> None:
    """SAM ViT-B/L/H share this architecture (only sizes differ): random weights, every prompt kind."""
    eager = Predictor(tiny_spec(tmp_path), build_tiny_sam(), backend="torch")
    graph = Predictor(tiny_spec(tmp_path), build_tiny_sam(), backend=backend, precision="f32")
    assert graph.backend == backend and graph.embedding_name == f"tiny_sam@{backend}"
    rgb = np.random.default_rng(1).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    e_emb, g_emb = eager.set_image(rgb), graph.set_image(rgb)
    np.testing.assert_allclose(g_emb.features.numpy(), e_emb.features.numpy(), atol=1e-4, rtol=1e-3)
    for group in parity_prompts(300, 400):
        want, got = eager.decode(group, e_emb), graph.decode(group, e_emb)
        for w, g in zip(want, got):
            assert w.shape == g.shape
            np.testing.assert_allclose(g.numpy(), w.numpy(), atol=1e-3, rtol=1e-3)
    assert any(exports.glob("decoder-*/decoder.onnx")) and any(exports.glob("encoder-1024-*/encoder.onnx"))


def test_one_box_runs_through_a_static_decoder_with_the_same_result(exports: Path) -> None:
    """OpenVINO decodes a single box with a decoder compiled for its shapes; other prompts, and the
    result, are those of the dynamic graph."""
    engine = backends.GraphEngine(build_tiny_sam(), 1024, "openvino", precision="f32")
    emb = Embedding("k", torch.randn(1, 256, 64, 64), Preprocessing("sam", 1024).geometry(300, 400), 0.0)
    box = [Prompt(box=np.array([40.0, 30.0, 200.0, 220.0])).checked(300, 400)]
    static = engine.decode(box, emb)
    assert engine._box is not None
    inputs = {"image_embeddings": emb.features.numpy(), **backends.prompt_arrays(box, emb.geometry.scale)}
    dynamic = engine._run(engine._decoder, inputs)
    np.testing.assert_allclose(static[0].numpy(), dynamic[0][:, 1:], atol=1e-4, rtol=1e-4)
    two = box * 2
    assert engine._decoder_for({"image_embeddings": emb.features.numpy(),
                                **backends.prompt_arrays(two, emb.geometry.scale)}) is engine._decoder


def test_mobilesam_graph_matches_eager(exports: Path) -> None:
    torch.manual_seed(0)
    model = build_mobilesam().eval()
    engine = backends.make_engine(model, 1024, "onnxruntime")
    x = torch.rand(1, 3, 1024, 1024)
    with torch.inference_mode():
        want = model.image_encoder(x)
    np.testing.assert_allclose(engine.encode(x).numpy(), want.numpy(), atol=1e-3, rtol=1e-3)


def test_exports_are_reused_and_keyed_by_weights(exports: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backends.export_graphs(build_tiny_sam(), 1024)
    first = sorted(p.name for p in exports.iterdir())
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: pytest.fail("exported again"))
    backends.GraphEngine(build_tiny_sam(), 1024, "onnxruntime")  # same weights: files reused
    assert sorted(p.name for p in exports.iterdir()) == first
    other = build_tiny_sam()
    with torch.no_grad():
        other.mask_decoder.iou_prediction_head.layers[0].bias += 1
    assert backends.weights_key(other.mask_decoder) != backends.weights_key(build_tiny_sam().mask_decoder)


def test_a_failed_export_falls_back_to_eager_only_when_not_forced(exports: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(backends, "export_graphs", broken)
    monkeypatch.delenv("MEDSAM_BACKEND", raising=False)
    with pytest.warns(UserWarning, match="Using eager PyTorch: the openvino backend could not be prepared"):
        assert backends.make_engine(build_tiny_sam(), 1024).name == "torch"
    with pytest.raises(ModelUnavailableError, match="The onnxruntime backend could not be prepared: disk full"):
        backends.make_engine(build_tiny_sam(), 1024, "onnxruntime")


@pytest.mark.parametrize("backend", GRAPHS)
def test_litemedsam_masks_match_eager_on_real_images(backend: str, manifest: pd.DataFrame,
                                                     data_dir: Path) -> None:
    """Issue 7 parity: mean DICE between backend and eager masks >= 0.99, box and point prompts (in f32;
    bf16 is measured by bench/backend_parity.py)."""
    eager = load_model("litemedsam", backend="torch")
    graph = load_model("litemedsam", backend=backend, precision="f32")
    rows = manifest.groupby("modality").head(1).head(8)
    agree = {"box": [], "points": []}
    for _, row in rows.iterrows():
        rgb, gt = load_rgb(data_dir / row["image"]), load_mask(data_dir / row["mask"]) > 0
        ys, xs = np.nonzero(gt)
        inside = np.stack([xs, ys], 1)[np.linspace(0, len(xs) - 1, 3).astype(int)]
        prompts = {"box": dict(box=[xs.min(), ys.min(), xs.max(), ys.max()]),
                   "points": dict(points=inside, labels=[1, 1, 1])}
        e_emb, g_emb = eager.set_image(rgb), graph.set_image(rgb)
        for kind, prompt in prompts.items():
            a = eager.predict(embedding=e_emb, **prompt).masks[0]
            b = graph.predict(embedding=g_emb, **prompt).masks[0]
            agree[kind].append(dice(a, b) if a.any() or b.any() else 1.0)
    assert len(agree["box"]) == 8
    assert np.mean(agree["box"]) >= 0.99 and np.mean(agree["points"]) >= 0.99, agree
