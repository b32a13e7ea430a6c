"""Prompted segmentation on one model: embedding cache, batched decoding.

Like ``segment_anything.SamPredictor`` but family-aware (each model's own preprocessing), with an
LRU cache of image embeddings bounded in bytes (``MEDSAM_CACHE_MB``) and shared by all predictors,
and a batched path that sends many prompts on one image through the decoder in as few calls as possible.
The decoder's inputs and outputs (``Embedding``, ``Prompt``, ``Prediction``) live in ``medsam.decoding``
and are re-exported here.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .backends import Engine, make_engine, resolve
from .decoding import Embedding, Prediction, Prompt
from .embeddings import load_embedding, store_embedding
from .errors import InputError, MedsamError
from .models import REGISTRY, ModelSpec, build_model, get_spec, model_info
from .precision import resolve_precision
from .settings import settings

MIN_SIDE = 8


class EmbeddingCache:
    """Thread-safe LRU of image embeddings, bounded by the bytes of the tensors it holds."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Embedding] = OrderedDict()
        self._lock = threading.Lock()
        self._pending: dict[str, threading.Event] = {}  # keys being computed by some thread

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> Embedding | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def get_or_compute(self, key: str, compute: Callable[[], Embedding]) -> tuple[Embedding, bool]:
        """The cached embedding for ``key`` (and True), or ``compute()``'s (and False). While one
        thread computes a key, others asking for it wait for that result instead of computing it
        again (two visitors on the same example, or a click during the start-up warm-up)."""
        while True:
            with self._lock:
                item = self._items.get(key)
                if item is not None:
                    self._items.move_to_end(key)
                    return item, True
                pending = self._pending.get(key)
                if pending is None:
                    self._pending[key] = threading.Event()
            if pending is None:
                break
            pending.wait()  # then look again: the result is cached, or the computing thread failed
        try:
            emb = compute()
            self.put(emb)
            return emb, False
        finally:
            with self._lock:
                self._pending.pop(key).set()

    def put(self, emb: Embedding) -> None:
        with self._lock:
            self._items[emb.key] = emb
            self._items.move_to_end(emb.key)
            while len(self._items) > 1 and self.nbytes > self.max_bytes:
                self._items.popitem(last=False)
            if self.nbytes > self.max_bytes:  # a single item larger than the bound is not kept
                self._items.clear()


_SHARED_CACHE: EmbeddingCache | None = None
_SHARED_CACHE_LOCK = threading.Lock()


def shared_cache() -> EmbeddingCache:
    """The embedding cache all predictors share by default, made on first use (``MEDSAM_CACHE_MB``)."""
    global _SHARED_CACHE
    with _SHARED_CACHE_LOCK:
        if _SHARED_CACHE is None:
            _SHARED_CACHE = EmbeddingCache(int(settings().cache_mb * 2**20))
        return _SHARED_CACHE


def image_key(model: str, rgb: np.ndarray) -> str:
    """Cache key: the model and a hash of the image content and shape."""
    digest = hashlib.blake2b(np.ascontiguousarray(rgb).data, digest_size=16)
    digest.update(str(rgb.shape).encode())
    return f"{model}:{digest.hexdigest()}"


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Check an image for ``set_image``: uint8 gray, RGB or RGBA -> (H, W, 3) uint8."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise InputError(f"The image must be 8-bit (uint8) but is {image.dtype}; convert it with "
                         f"medsam.imaging.load_rgb or apply a window first.")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] in (1, 3, 4):
        image = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[..., :3]
    else:
        raise InputError(f"The image has shape {image.shape}; expected (H, W), (H, W, 3) or (H, W, 4).")
    if min(image.shape[:2]) < MIN_SIDE:
        raise InputError(f"The image is {image.shape[1]}x{image.shape[0]} pixels; it must be at least "
                         f"{MIN_SIDE}x{MIN_SIDE}.")
    return np.ascontiguousarray(image)


class Predictor:
    """Segment images with one model from point/box prompts.

    ``cache`` defaults to ``shared_cache()``; ``backend``, ``threads`` and ``precision`` go to
    ``medsam.backends.make_engine`` (defaults from ``medsam.settings``).
    """

    def __init__(self, spec: ModelSpec, model: torch.nn.Module, cache: EmbeddingCache | None = None,
                 device: str | torch.device = "cpu", backend: str | None = None, threads: int | None = None,
                 precision: str | None = None) -> None:
        self.spec = spec
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.engine: Engine = make_engine(self.model, spec.input_size, backend, self.device, threads, precision)
        self.cache = shared_cache() if cache is None else cache  # an empty cache is falsy
        self._current: Embedding | None = None

    @property
    def backend(self) -> str:
        return self.engine.name

    def release_torch_encoder(self) -> None:
        """Free the torch image encoder's weights when an exported graph does the encoding (for SAM
        ViT-H, 2.5 GB); ``load_model`` does this for the predictors it keeps."""
        if self.backend != "torch":
            self.model.image_encoder = _ExportedEncoder()

    @property
    def nbytes(self) -> int:
        """Memory this model holds: its torch weights and its exported graphs (their files' size)."""
        weights = sum(t.numel() * t.element_size() for t in self.model.state_dict().values())
        return weights + getattr(self.engine, "nbytes", 0)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def encoder_name(self) -> str:
        """Models that share an image encoder (a base and its finetuned decoders) share embeddings."""
        return self.spec.base or self.spec.name

    @property
    def embedding_name(self) -> str:
        """Cache name of this predictor's embeddings: the encoder, and the backend unless eager."""
        tag = self.engine.tag
        return self.encoder_name if tag == "torch" else f"{self.encoder_name}@{tag}"

    @torch.inference_mode()
    def set_image(self, image: np.ndarray, persist: bool = False,
                  before_encode: Callable[[], None] | None = None) -> Embedding:
        """Encode an RGB uint8 image, or reuse its embedding from memory or disk (``medsam.embeddings``);
        it becomes the current image. ``persist`` also writes a new embedding to disk;
        ``before_encode`` is called only when the encoder is about to run (to tell a user to wait)."""
        rgb = as_rgb(image)
        key = image_key(self.embedding_name, rgb)

        def encode() -> Embedding:
            stored = load_embedding(self.embedding_name, key, self.device)
            if stored is not None:
                return stored
            if before_encode:
                before_encode()
            start = time.perf_counter()
            x, geo = self.spec.preprocessing.image(rgb)
            feats = self.engine.encode(x.to(self.device))
            emb = Embedding(key, feats, geo, (time.perf_counter() - start) * 1e3)
            if persist:
                store_embedding(self.embedding_name, emb)
            return emb

        emb, cached = self.cache.get_or_compute(key, encode)
        if cached:
            emb = Embedding(emb.key, emb.features, emb.geometry, emb.encode_ms, cached=True)
        self._current = emb
        return emb

    def is_cached(self, image: np.ndarray) -> bool:
        """Whether ``set_image(image)`` would skip the encoder (the embedding is in memory or on disk)."""
        rgb = as_rgb(image)
        key = image_key(self.embedding_name, rgb)
        return self.cache.get(key) is not None or load_embedding(self.embedding_name, key) is not None

    def predict(self, points: Any = None, labels: Any = None, box: Any = None, multimask: bool = True,
                mask_input: Any = None, embedding: Embedding | None = None) -> Prediction:
        """Segment the current image (or ``embedding``) from one prompt.

        Args:
            points: (N, 2) as (x, y) in original-image pixels, at most ``MAX_POINTS``.
            labels: one per point, 1 (object) or 0 (background); default all 1.
            box: [x0, y0, x1, y1] in original-image pixels (clipped to the image).
            multimask: three candidates (True) or one.
            mask_input: (256, 256) low-res logits of an earlier prediction (``Prediction.logits[i]``).
            embedding: an image from ``set_image`` (default: the current one).

        Returns:
            The masks at the original image size, best first by predicted IoU.

        Raises:
            InputError: no image is set, or the prompt is malformed or outside the image.
        """
        prompt = Prompt.make(points, labels, box, mask_input, multimask)
        return self.predict_batch([prompt], embedding)[0]

    @torch.inference_mode()
    def predict_batch(self, prompts: Sequence[Prompt | Mapping[str, Any]],
                      embedding: Embedding | None = None) -> list[Prediction]:
        """Segment many prompts on one image, grouping compatible prompts into one decoder call.

        Prompts with the same number of points, box/no box, mask input/none and multimask flag
        form one batch, so each result equals what ``predict`` gives for that prompt alone (in f32;
        in bf16 up to bfloat16 rounding).

        Args:
            prompts: ``Prompt`` objects, or mappings of ``Prompt.make``'s arguments.
            embedding: an image from ``set_image`` (default: the current one).

        Returns:
            One ``Prediction`` per prompt, in order.

        Raises:
            InputError: no image is set, or a prompt is malformed or outside the image.
        """
        emb = embedding or self._current
        if emb is None:
            raise InputError("No image is set: call set_image(image) first.")
        h, w = emb.geometry.original
        checked = [(p if isinstance(p, Prompt) else Prompt.make(**p)).checked(h, w) for p in prompts]
        results: list[Prediction | None] = [None] * len(checked)
        for idx in _groups(checked):
            start = time.perf_counter()
            low_res, scores = self.decode([checked[i] for i in idx], emb)
            order = torch.argsort(scores, dim=1, descending=True)  # sort before upscaling: cheaper
            rows = torch.arange(len(idx))[:, None]
            low_res, scores = low_res[rows, order], scores[rows, order]
            masks = (self.spec.preprocessing.upscale(low_res, emb.geometry) > 0).cpu().numpy()
            ms = (time.perf_counter() - start) * 1e3 / len(idx)
            for j, i in enumerate(idx):
                results[i] = Prediction(masks[j], scores[j].float().cpu().numpy(),
                                        low_res[j].float().cpu().numpy(), ms)
        return results  # type: ignore[return-value]

    def decode(self, prompts: list[Prompt], emb: Embedding) -> tuple[torch.Tensor, torch.Tensor]:
        """Checked prompts of one structure -> low-res logits and predicted IoU, on this backend."""
        return self.engine.decode(prompts, emb)

    def decode_clicks(self, points: np.ndarray, emb: Embedding) -> tuple[torch.Tensor, torch.Tensor]:
        """Single positive clicks (B, 2) in original pixels inside the image -> the three multimask
        candidates' low-res logits (B, 3, 256, 256) and predicted IoU (B, 3): what ``decode`` gives
        for each click alone, with less work per click (everything mode's point grid)."""
        return self.engine.decode_clicks(np.asarray(points, np.float64).reshape(-1, 2), emb)


def _groups(prompts: Iterable[Prompt]) -> list[list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(prompts):
        key = (0 if p.points is None else len(p.points), p.box is None, p.mask_input is None, p.multimask)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


class _ExportedEncoder(torch.nn.Module):
    """Stands in for an image encoder whose exported graph does the work: its weights are freed."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise MedsamError("This model's image encoder runs as an exported graph; use Predictor.set_image.")


class _Models:
    """The loaded predictors, least recently used first, bounded by their bytes (``MEDSAM_MODELS_MB``).

    A model's bytes are its remaining torch weights plus its exported graphs' files (about what the
    compiled graphs hold). Loading one that does not fit drops the least recently used others (a
    session still holding a dropped predictor keeps it alive until it lets go). Each model is built
    under its own lock, so a visitor loading ViT-H for minutes does not hold up one asking for a
    model that is already loaded, and two visitors asking for ViT-H at once build it once.
    """

    def __init__(self) -> None:
        self.items: OrderedDict[tuple, Predictor] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[tuple, threading.Lock] = {}

    def get(self, key: tuple, spec: ModelSpec, build: Callable[[], Predictor]) -> Predictor:
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                pred = self.items.get(key)
                if pred is not None and pred.spec is spec:
                    self.items.move_to_end(key)
                    return pred
            pred = build()
            pred.release_torch_encoder()
            with self._lock:
                self.items[key] = pred
                self.items.move_to_end(key)
                bound = settings().models_mb * 2**20
                while len(self.items) > 1 and sum(p.nbytes for p in self.items.values()) > bound:
                    self.items.popitem(last=False)
            return pred


_MODELS = _Models()


def load_model(name: str = "litemedsam", download: bool | None = None, device: str = "cpu",
               backend: str | None = None, threads: int | None = None, precision: str | None = None) -> Predictor:
    """A ready ``Predictor`` for a registered model, loaded once per process and set of arguments.

    Args:
        name: a key of ``medsam.models.REGISTRY``.
        download: fetch a missing checkpoint (default: ``MEDSAM_DOWNLOAD``, on by default on a HF Space).
        device: ``cpu`` or a torch device such as ``cuda``; exported-graph backends run on CPU only.
        backend: ``auto``, ``openvino``, ``onnxruntime`` or ``torch`` (default: ``MEDSAM_BACKEND``, else
            auto, the fastest installed; see ``medsam.backends.resolve``).
        threads: inference threads of an exported-graph backend (default: ``MEDSAM_THREADS``, else
            torch's setting).
        precision: ``auto``, ``f32`` or ``bf16`` for OpenVINO (default: ``MEDSAM_PRECISION``, else auto:
            bf16 where the CPU computes it natively; see ``medsam.precision``).

    Returns:
        The shared ``Predictor`` for these arguments.

    Raises:
        MedsamError: an unknown model; ``ModelUnavailableError`` for an unknown or uninstalled backend or a
            checkpoint that is missing and not downloaded, ``CheckpointError`` for one that fails its checks.
    """
    spec = get_spec(name)
    engine = resolve(backend, device)
    precision = resolve_precision(precision) if engine == "openvino" else "f32"  # the others compute in f32
    return _MODELS.get((name, str(device), engine, threads, precision), spec, lambda: Predictor(
        spec, build_model(spec, download), device=device, backend=engine, threads=threads, precision=precision))


def loaded_models() -> list[str]:
    """Names of the models loaded now, least recently used first."""
    return [key[0] for key in _MODELS.items]


def list_models() -> list[dict]:
    """Every registered model with its metadata and whether its checkpoint is ready offline."""
    return [model_info(spec) for spec in REGISTRY.values()]
