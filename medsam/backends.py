"""Inference backends behind the predictor: eager PyTorch, or exported ONNX graphs run by OpenVINO or
ONNX Runtime.

The image encoder and the prompt encoder + mask decoder are exported once per weights (keyed by a
hash of the weights and the torch/onnx versions) to ``<checkpoint dir>/exported/`` and reused on
later starts. The decoder graph takes prompts as padded point arrays, as SAM's own ONNX export
does: box corners are points labelled 2 and 3, a prompt without a box gets one padding point
labelled -1, so any number of prompts and points goes through one graph.

``MEDSAM_BACKEND`` (``auto``, ``openvino``, ``onnxruntime`` or ``torch``) or the ``backend`` argument
picks one; ``auto`` takes the fastest installed (measured by ``bench/perf.py and bench/backend_parity.py``: OpenVINO, then
ONNX Runtime, then eager PyTorch). ``MEDSAM_PRECISION=bf16`` lets OpenVINO compute in bfloat16 on
CPUs that support it (faster, less exact; the default ``f32`` matches eager PyTorch).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from segment_anything.modeling import Sam

from . import checkpoints
from .errors import ModelUnavailableError
from .models import LOW_RES

if TYPE_CHECKING:
    from .predictor import Embedding, Prompt

BACKENDS = ("openvino", "onnxruntime", "torch")  # fastest first; each is also its module's name
GRAPH_VERSION = "1"  # bump when the exported wrappers below change


@functools.cache
def available() -> list[str]:
    """Installed backends, fastest first."""
    return [b for b in BACKENDS if importlib.util.find_spec(b) is not None]


def resolve(backend: str | None = None, device: str | torch.device = "cpu") -> str:
    """The backend to use: the argument, else ``MEDSAM_BACKEND``, else the fastest installed."""
    choice = (backend or os.environ.get("MEDSAM_BACKEND") or "auto").lower()
    if torch.device(device).type != "cpu":
        return "torch"  # exported graphs run on CPU here; GPUs use eager PyTorch
    if choice == "auto":
        return available()[0]
    if choice not in BACKENDS:
        raise ModelUnavailableError(f"Unknown backend '{choice}'; choose one of auto, {', '.join(BACKENDS)}.")
    if choice not in available():
        raise ModelUnavailableError(f"The {choice} backend is not installed; run `pip install {choice}` "
                                    f"or choose one of {', '.join(available())}.")
    return choice


def threads() -> int:
    """Inference threads: ``MEDSAM_THREADS``, else torch's setting (one per core)."""
    return int(os.environ.get("MEDSAM_THREADS", torch.get_num_threads()))


def _usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def precision() -> str:
    value = os.environ.get("MEDSAM_PRECISION", "f32").lower()
    if value not in ("f32", "bf16"):
        raise ModelUnavailableError(f"MEDSAM_PRECISION must be f32 or bf16, not '{value}'.")
    return value


class Engine(Protocol):
    """What the predictor needs from a backend."""

    name: str
    tag: str  # name plus any setting that changes the numbers (embeddings are cached per tag)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed image (1, 3, S, S) -> embedding (1, 256, 64, 64)."""

    def decode(self, prompts: list[Prompt], emb: Embedding) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts of one structure -> low-res logits (B, C, 256, 256) and predicted IoU (B, C)."""


class TorchEngine:
    """Eager PyTorch: the reference every other backend is checked against."""

    name = tag = "torch"

    def __init__(self, model: Sam) -> None:
        self.model = model

    @torch.inference_mode()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.image_encoder(x)

    @torch.inference_mode()
    def decode(self, prompts: list[Prompt], emb: Embedding) -> tuple[torch.Tensor, torch.Tensor]:
        from .predictor import decode_prompts
        return decode_prompts(self.model, prompts, emb)


class DecoderGraph(torch.nn.Module):
    """Prompt encoder + mask decoder over padded point prompts; returns all four mask tokens."""

    def __init__(self, model: Sam) -> None:
        super().__init__()
        self.prompt_encoder = model.prompt_encoder
        self.mask_decoder = model.mask_decoder

    def forward(self, image_embeddings: torch.Tensor, point_coords: torch.Tensor, point_labels: torch.Tensor,
                mask_input: torch.Tensor, has_mask_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pe = self.prompt_encoder
        sparse = pe.pe_layer.forward_with_coords(point_coords + 0.5, pe.input_image_size)
        labels = point_labels[..., None]
        sparse = sparse * (labels != -1).to(sparse.dtype) + pe.not_a_point_embed.weight * (labels == -1).to(sparse.dtype)
        for i, point_embed in enumerate(pe.point_embeddings):
            sparse = sparse + point_embed.weight * (labels == i).to(sparse.dtype)
        dense = pe.mask_downscaling(mask_input) * has_mask_input + \
            (1 - has_mask_input) * pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
        return self.mask_decoder.predict_masks(image_embeddings, pe.get_dense_pe(), sparse, dense)


def prompt_arrays(prompts: list[Prompt], scale: np.ndarray) -> dict[str, np.ndarray]:
    """Checked prompts of one structure -> the decoder graph's inputs (coordinates in model pixels)."""
    coords, labels = [], []
    for p in prompts:
        pts = np.zeros((0, 2)) if p.points is None else p.points * scale
        lab = np.zeros(0) if p.labels is None else p.labels
        if p.box is None:
            pts, lab = np.vstack([pts, [[0.0, 0.0]]]), np.append(lab, -1)
        else:
            pts, lab = np.vstack([pts, p.box.reshape(2, 2) * scale]), np.append(lab, [2, 3])
        coords.append(pts)
        labels.append(lab)
    has_mask = prompts[0].mask_input is not None
    masks = (np.stack([p.mask_input for p in prompts])[:, None] if has_mask
             else np.zeros((len(prompts), 1, LOW_RES, LOW_RES)))
    return {"point_coords": np.asarray(coords, np.float32), "point_labels": np.asarray(labels, np.float32),
            "mask_input": masks.astype(np.float32), "has_mask_input": np.array([float(has_mask)], np.float32)}


def weights_key(*modules: torch.nn.Module) -> str:
    """A hash of the modules' weights and of the exporting library versions."""
    import onnx
    digest = hashlib.blake2b(f"{GRAPH_VERSION}|{torch.__version__}|{onnx.__version__}".encode(), digest_size=10)
    for module in modules:
        for name, tensor in module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def export_dir() -> Path:
    return checkpoints.checkpoint_dir() / "exported"


def _export(module: torch.nn.Module, args: tuple, path: Path, names: tuple[list[str], list[str]],
            dynamic: dict[str, dict[int, str]] | None = None) -> Path:
    """Export to ONNX once; a folder per graph, renamed into place when complete."""
    if path.is_file():
        return path
    path.parent.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent.parent, prefix=".export-"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(tmp / path.name), input_names=names[0], output_names=names[1],
                              dynamic_axes=dynamic, opset_version=17, dynamo=False)
        try:
            tmp.rename(path.parent)
        except OSError:  # another process finished first
            if not path.is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def export_graphs(model: Sam, input_size: int) -> tuple[Path, Path]:
    """The model's encoder and decoder as ONNX files, exported on first use."""
    root = export_dir()
    enc = root / f"encoder-{input_size}-{weights_key(model.image_encoder)}" / "encoder.onnx"
    dec = root / f"decoder-{weights_key(model.prompt_encoder, model.mask_decoder)}" / "decoder.onnx"
    with torch.no_grad():
        _export(model.image_encoder, (torch.zeros(1, 3, input_size, input_size),), enc, (["image"], ["embedding"]))
        example = {"point_coords": np.zeros((2, 2, 2), np.float32),
                   "point_labels": np.array([[1, -1], [0, -1]], np.float32),
                   "mask_input": np.zeros((2, 1, LOW_RES, LOW_RES), np.float32),
                   "has_mask_input": np.zeros(1, np.float32)}
        args = (torch.zeros(1, 256, 64, 64), *(torch.from_numpy(v) for v in example.values()))
        batch = {0: "prompts"}
        _export(DecoderGraph(model).eval(), args, dec, (["image_embeddings", *example], ["low_res", "iou"]),
                {"point_coords": {0: "prompts", 1: "points"}, "point_labels": {0: "prompts", 1: "points"},
                 "mask_input": batch, "low_res": batch, "iou": batch})
    return enc, dec


class GraphEngine:
    """Exported graphs run by OpenVINO or ONNX Runtime."""

    def __init__(self, model: Sam, input_size: int, backend: str) -> None:
        self.name = backend
        self.tag = f"{backend}-bf16" if backend == "openvino" and precision() == "bf16" else backend
        enc, dec = export_graphs(model, input_size)
        self._lock = threading.Lock()
        if backend == "openvino":
            import openvino as ov
            core = ov.Core()
            core.set_property({"CACHE_DIR": str(export_dir() / "openvino-cache")})
            # Pinned threads start at the first cores: processes given fewer threads than there are
            # cores (e.g. one per Ray worker) would all share those cores, so pin only when using all.
            config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads(),
                      "INFERENCE_PRECISION_HINT": precision(),
                      "ENABLE_CPU_PINNING": threads() >= _usable_cores()}
            self._encoder = core.compile_model(str(enc), "CPU", config).create_infer_request()
            self._decoder = core.compile_model(str(dec), "CPU", config).create_infer_request()
        else:
            import onnxruntime as ort
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads()
            options.inter_op_num_threads = 1
            self._encoder = ort.InferenceSession(str(enc), options, providers=["CPUExecutionProvider"])
            self._decoder = ort.InferenceSession(str(dec), options, providers=["CPUExecutionProvider"])

    def _run(self, session, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            if self.name == "openvino":
                result = session.infer(inputs)
                return [np.array(result[i]) for i in range(len(result))]
            return session.run(None, inputs)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._run(self._encoder, {"image": x.numpy()})[0])

    def decode(self, prompts: list[Prompt], emb: Embedding) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = {"image_embeddings": emb.features.cpu().numpy(), **prompt_arrays(prompts, emb.geometry.scale)}
        low_res, iou = self._run(self._decoder, inputs)
        keep = slice(1, None) if prompts[0].multimask else slice(0, 1)
        return torch.from_numpy(low_res[:, keep]), torch.from_numpy(iou[:, keep])


def make_engine(model: Sam, input_size: int, backend: str | None = None,
                device: str | torch.device = "cpu") -> Engine:
    """The engine for ``backend`` (see ``resolve``); falls back to eager PyTorch, with a warning,
    when exporting fails (e.g. a read-only checkpoint folder)."""
    name = resolve(backend, device)
    if name == "torch":
        return TorchEngine(model)
    try:
        return GraphEngine(model, input_size, name)
    except Exception as exc:  # noqa: BLE001 - any export/compile failure leaves eager PyTorch working
        if backend or os.environ.get("MEDSAM_BACKEND", "auto").lower() != "auto":
            raise ModelUnavailableError(f"The {name} backend could not be prepared: {exc}") from exc
        warnings.warn(f"Using eager PyTorch: the {name} backend could not be prepared ({exc}).")
        return TorchEngine(model)
