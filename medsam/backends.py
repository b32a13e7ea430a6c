"""Inference backends behind the predictor: eager PyTorch, or exported ONNX graphs run by OpenVINO or
ONNX Runtime.

The image encoder and the prompt encoder + mask decoder are exported once per weights (keyed by a
hash of the weights and the torch/onnx versions) to ``<checkpoint dir>/exported/`` and reused on
later starts; a lock file per graph makes concurrent exporters (threads or processes) wait for one
export, and graphs over 2 GB (SAM ViT-H) keep their weights as external data files beside the graph.

The decoder graph takes prompts as padded point arrays, as SAM's own ONNX export
does: box corners are points labelled 2 and 3, a prompt without a box gets one padding point
labelled -1, so any number of prompts and points goes through one graph. Everything mode's grid of
single clicks has a graph of its own (``GridGraph``, exported on first use) that does the
prompt-independent image work once per batch instead of once per click.

The ``backend`` argument, else ``MEDSAM_BACKEND`` (``auto``, ``openvino``, ``onnxruntime`` or ``torch``;
empty means ``auto``) picks one; ``auto`` takes the fastest installed (measured by ``bench/perf.py`` and
``bench/backend_parity.py``: OpenVINO, then ONNX Runtime, then eager PyTorch). The ``threads`` and
``precision`` arguments default to ``MEDSAM_THREADS`` and ``MEDSAM_PRECISION`` (``medsam.settings``).
OpenVINO's arithmetic (f32, bf16 or auto) is resolved by ``medsam.precision``.
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
from typing import Protocol

import numpy as np
import torch
from filelock import FileLock
from segment_anything.modeling import Sam

from . import checkpoints
from .decoding import Embedding, Prompt, decode_prompts
from .errors import ModelUnavailableError
from .models import LOW_RES
from .precision import resolve_precision, variant_tag
from .settings import settings

BACKENDS = ("openvino", "onnxruntime", "torch")  # fastest first; each is also its module's name
GRAPH_VERSION = "1"  # bump when the exported wrappers below change
GRID_BATCH = 16
BOX_PROMPT = {"point_coords": (1, 2, 2), "point_labels": (1, 2), "mask_input": (1, 1, LOW_RES, LOW_RES)}
"""The decoder's input shapes for one box alone, the commonest prompt: OpenVINO runs it through a
decoder compiled for exactly these shapes (on first use), faster than the dynamic graph (LiteMedSAM
51 vs 63 ms per box on 2 cores, upscaling included: ``python -m bench.decoder_shapes``)."""
"""Clicks per ``GridGraph`` call: OpenVINO compiles that graph for exactly this batch (a static
shape is faster than a dynamic one); 8-32 cost the same per click on 2 cores (bench/everything.py)."""


@functools.cache
def available() -> list[str]:
    """Installed backends, fastest first."""
    return [b for b in BACKENDS if importlib.util.find_spec(b) is not None]


def resolve(backend: str | None = None, device: str | torch.device = "cpu") -> str:
    """The backend to use: the argument, else ``MEDSAM_BACKEND``, else (``auto``) the fastest installed."""
    choice = (backend or settings().backend).lower()
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


def default_threads() -> int:
    """Inference threads: ``MEDSAM_THREADS``, else torch's setting (one per core)."""
    return settings().threads or torch.get_num_threads()


def _usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Engine(Protocol):
    """What the predictor needs from a backend."""

    name: str
    tag: str  # name plus any setting that changes the numbers (embeddings are cached per tag)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed image (1, 3, S, S) -> embedding (1, 256, 64, 64)."""

    def decode(self, prompts: list[Prompt], emb: Embedding) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts of one structure -> low-res logits (B, C, 256, 256) and predicted IoU (B, C)."""

    def decode_clicks(self, points: np.ndarray, emb: Embedding) -> tuple[torch.Tensor, torch.Tensor]:
        """Single positive clicks (B, 2) in original pixels -> the multimask candidates' low-res
        logits (B, 3, 256, 256) and predicted IoU (B, 3), as ``decode`` gives them for each click."""


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
        return decode_prompts(self.model, prompts, emb)

    @torch.inference_mode()
    def decode_clicks(self, points: np.ndarray, emb: Embedding) -> tuple[torch.Tensor, torch.Tensor]:
        coords = torch.as_tensor(points * emb.geometry.scale, dtype=torch.float32)
        return GridGraph(self.model)(emb.features, coords)


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
        padding = (labels == -1).to(sparse.dtype)
        sparse = sparse * (labels != -1).to(sparse.dtype) + pe.not_a_point_embed.weight * padding
        for i, point_embed in enumerate(pe.point_embeddings):
            sparse = sparse + point_embed.weight * (labels == i).to(sparse.dtype)
        dense = pe.mask_downscaling(mask_input) * has_mask_input + \
            (1 - has_mask_input) * pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
        return self.mask_decoder.predict_masks(image_embeddings, pe.get_dense_pe(), sparse, dense)


class GridGraph(torch.nn.Module):
    """``DecoderGraph`` for a batch of single positive clicks with no mask input, returning the three
    multimask candidates. The image embedding keeps batch size 1 and broadcasts against the clicks,
    so the first transformer layer's image projections (about a third of the decoder's work) run
    once per batch; every other operation is the same as in ``MaskDecoder.predict_masks``."""

    def __init__(self, model: Sam) -> None:
        super().__init__()
        self.prompt_encoder = model.prompt_encoder
        self.mask_decoder = model.mask_decoder

    def forward(self, image_embeddings: torch.Tensor, point_coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, 256, 64, 64) embedding and (B, 2) clicks in model-input pixels -> (B, 3, 256, 256), (B, 3)."""
        pe, md = self.prompt_encoder, self.mask_decoder
        n = point_coords.shape[0]  # not len(): the exported graph keeps the batch size dynamic
        click = pe.pe_layer.forward_with_coords(point_coords[:, None] + 0.5, pe.input_image_size)[:, 0]
        click = click + pe.point_embeddings[1].weight
        padding = pe.not_a_point_embed.weight.expand(n, -1)
        output_tokens = torch.cat([md.iou_token.weight, md.mask_tokens.weight]).expand(n, -1, -1)
        tokens = torch.cat([output_tokens, torch.stack([click, padding], 1)], 1)
        src = image_embeddings + pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
        hs, src = md.transformer(src, pe.get_dense_pe(), tokens)
        c, h, w = image_embeddings.shape[1:]
        upscaled = md.output_upscaling(src.transpose(1, 2).reshape(n, c, h, w))
        hyper = torch.stack([mlp(hs[:, 1 + i]) for i, mlp in enumerate(md.output_hypernetworks_mlps)], 1)
        masks = (hyper @ upscaled.flatten(2)).view(n, -1, *upscaled.shape[2:])
        return masks[:, 1:], md.iou_prediction_head(hs[:, 0])[:, 1:]


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
    """Export to ONNX once; a folder per graph, renamed into place when complete.

    A lock file beside the folder makes a second exporter of the same graph (another visitor's
    thread or another process) wait for the first and reuse its result: a ViT-H export takes
    minutes and gigabytes, and must not run twice at once. Graphs over ONNX's 2 GB protobuf limit
    (ViT-H) are written by torch with their weights as external data files in the same folder.
    """
    if path.is_file():
        return path
    path.parent.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.parent.parent / f".{path.parent.name}.lock"):
        if path.is_file():  # exported by whoever held the lock before us
            return path
        tmp = Path(tempfile.mkdtemp(dir=path.parent.parent, prefix=".export-"))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(module, args, str(tmp / path.name), input_names=names[0],
                                  output_names=names[1], dynamic_axes=dynamic, opset_version=17, dynamo=False)
            tmp.rename(path.parent)
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


def export_grid_graph(model: Sam) -> Path:
    """``GridGraph`` as an ONNX file, exported on first use."""
    path = export_dir() / f"grid-{weights_key(model.prompt_encoder, model.mask_decoder)}" / "grid.onnx"
    clicks = {0: "clicks"}
    with torch.no_grad():
        _export(GridGraph(model).eval(), (torch.zeros(1, 256, 64, 64), torch.zeros(2, 2)), path,
                (["image_embeddings", "point_coords"], ["low_res", "iou"]),
                {"point_coords": clicks, "low_res": clicks, "iou": clicks})
    return path


@functools.cache
def _openvino_core(cache_dir: str):
    """One OpenVINO runtime per compiled-model cache folder."""
    import openvino as ov
    core = ov.Core()
    core.set_property({"CACHE_DIR": cache_dir})
    return core


class GraphEngine:
    """Exported graphs run by OpenVINO or ONNX Runtime on ``threads`` threads (OpenVINO in ``precision``;
    defaults as for ``make_engine``). The click graph is exported and compiled on its first use
    (everything mode), so loading a model costs only the encoder and decoder."""

    def __init__(self, model: Sam, input_size: int, backend: str, threads: int | None = None,
                 precision: str | None = None) -> None:
        self.name = backend
        self.threads, self.precision = threads or default_threads(), resolve_precision(precision)
        self.tag = variant_tag(backend, self.precision)
        enc, dec = export_graphs(model, input_size)
        self.nbytes = sum(f.stat().st_size for folder in {enc.parent, dec.parent} for f in folder.iterdir())
        self._model = model
        self._decoder_path = dec
        self._grid = self._box = None
        self._lock = threading.Lock()
        self._encoder, self._decoder = self._session(enc), self._session(dec)

    def _session(self, path: Path, static: dict[str, list[int]] | None = None):
        """An inference session for one graph; ``static`` fixes input shapes (OpenVINO only)."""
        if self.name == "openvino":
            core = _openvino_core(str(export_dir() / "openvino-cache"))
            graph = core.read_model(str(path))
            if static:
                graph.reshape(static)
            # Pinned threads start at the first cores: processes given fewer threads than there are
            # cores (e.g. one per Ray worker) would all share those cores, so pin only when using all.
            config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": self.threads,
                      "INFERENCE_PRECISION_HINT": self.precision,
                      "ENABLE_CPU_PINNING": self.threads >= _usable_cores()}
            return core.compile_model(graph, "CPU", config).create_infer_request()
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

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
        low_res, iou = self._run(self._decoder_for(inputs), inputs)
        keep = slice(1, None) if prompts[0].multimask else slice(0, 1)
        return torch.from_numpy(low_res[:, keep]), torch.from_numpy(iou[:, keep])

    def _decoder_for(self, inputs: dict[str, np.ndarray]):
        """The static one-box decoder for a single box (OpenVINO), else the dynamic one."""
        if self.name != "openvino" or any(inputs[k].shape != shape for k, shape in BOX_PROMPT.items()):
            return self._decoder
        with self._lock:
            if self._box is None:
                self._box = self._session(self._decoder_path, {k: list(v.shape) for k, v in inputs.items()})
        return self._box

    def decode_clicks(self, points: np.ndarray, emb: Embedding) -> tuple[torch.Tensor, torch.Tensor]:
        with self._lock:
            if self._grid is None:
                shapes = {"image_embeddings": [1, 256, 64, 64], "point_coords": [GRID_BATCH, 2]}
                self._grid = self._session(export_grid_graph(self._model), shapes)
        features = emb.features.cpu().numpy()
        coords = (points * emb.geometry.scale).astype(np.float32)
        low_res, iou = [], []
        for start in range(0, len(coords), GRID_BATCH):  # the last batch padded to GRID_BATCH
            batch = coords[start:start + GRID_BATCH]
            padded = np.concatenate([batch, np.zeros((GRID_BATCH - len(batch), 2), np.float32)])
            masks, scores = self._run(self._grid, {"image_embeddings": features, "point_coords": padded})
            low_res.append(masks[:len(batch)])
            iou.append(scores[:len(batch)])
        return torch.from_numpy(np.concatenate(low_res)), torch.from_numpy(np.concatenate(iou))


def make_engine(model: Sam, input_size: int, backend: str | None = None, device: str | torch.device = "cpu",
                threads: int | None = None, precision: str | None = None) -> Engine:
    """The engine for ``backend`` (see ``resolve``) on ``threads`` threads in ``precision`` (defaults:
    ``MEDSAM_THREADS``, else torch's setting, and ``resolve_precision``). Falls back to eager PyTorch,
    with a warning, when exporting fails (e.g. a read-only checkpoint folder) and the backend was auto."""
    name = resolve(backend, device)
    if name == "torch":
        return TorchEngine(model)
    try:
        return GraphEngine(model, input_size, name, threads, precision)
    except Exception as exc:  # noqa: BLE001 - any export/compile failure leaves eager PyTorch working
        if (backend or settings().backend).lower() != "auto":
            raise ModelUnavailableError(f"The {name} backend could not be prepared: {exc}") from exc
        warnings.warn(f"Using eager PyTorch: the {name} backend could not be prepared ({exc}).", stacklevel=2)
        return TorchEngine(model)
