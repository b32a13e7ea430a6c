"""Prompted segmentation on one model: embedding cache, prompt checks, batched decoding.

Like ``segment_anything.SamPredictor`` but family-aware (each model's own preprocessing), with an
LRU cache of image embeddings bounded in bytes (``MEDSAM_CACHE_MB``) and shared by all predictors,
and a batched path that sends many prompts on one image through the decoder in as few calls as possible.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from .backends import Engine, make_engine, resolve
from .errors import InputError
from .models import LOW_RES, Geometry, ModelSpec, build_model, get_spec, model_info, REGISTRY
from .settings import settings

MAX_POINTS = 100  # per prompt; more is refused rather than slowing everyone down
MIN_SIDE = 8


@dataclass
class Embedding:
    """An encoded image: the encoder output plus the geometry to map prompts and masks."""

    key: str
    features: torch.Tensor  # (1, 256, 64, 64)
    geometry: Geometry
    encode_ms: float
    cached: bool = False

    @property
    def nbytes(self) -> int:
        return self.features.element_size() * self.features.nelement()


@dataclass
class Prompt:
    """One prompt in original-image pixels: points (N, 2) as (x, y) with labels 1/0, and/or a box."""

    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    box: np.ndarray | None = None
    mask_input: np.ndarray | None = None  # (256, 256) low-res logits from a previous prediction
    multimask: bool = True

    @classmethod
    def make(cls, points: Any = None, labels: Any = None, box: Any = None, mask_input: Any = None,
             multimask: bool = True) -> Prompt:
        """Build from lists/arrays/JSON-like values, checking types and lengths."""
        try:
            pts = None if points is None or len(points) == 0 else np.asarray(points, np.float64).reshape(-1, 2)
            lab = None if labels is None or len(labels) == 0 else np.asarray(labels, np.float64).reshape(-1)
            bx = None if box is None or len(box) == 0 else np.asarray(box, np.float64).reshape(4)
            mi = None if mask_input is None else np.asarray(mask_input, np.float32).reshape(LOW_RES, LOW_RES)
        except OverflowError as exc:  # an integer too large for a float
            raise InputError("Prompt coordinates must be finite numbers.") from exc
        except (TypeError, ValueError) as exc:
            raise InputError("Prompts must be numbers: points as [[x, y], ...], labels as [1, 0, ...], "
                             "a box as [x0, y0, x1, y1] and a mask input (Python API only) as the "
                             "256x256 low-res logits of an earlier prediction.") from exc
        if pts is not None:
            if len(pts) > MAX_POINTS:
                raise InputError(f"{len(pts)} points were given; at most {MAX_POINTS} are allowed per prompt.")
            if lab is None:
                lab = np.ones(len(pts))
            if len(lab) != len(pts):
                raise InputError(f"{len(pts)} points but {len(lab)} "
                                 f"{'label was' if len(lab) == 1 else 'labels were'} given; give one label per point.")
            if not np.isin(lab, (0, 1)).all():
                raise InputError("Point labels must be 1 (object) or 0 (background).")
        elif lab is not None:
            raise InputError("Labels were given without points.")
        for arr in (pts, bx, mi):
            if arr is not None and not np.isfinite(arr).all():
                raise InputError("Prompt coordinates must be finite numbers.")
        return cls(pts, lab, bx, mi, bool(multimask))

    def checked(self, height: int, width: int) -> Prompt:
        """Validate against the image size; clip a box that sticks out, refuse what cannot work."""
        if self.points is None and self.box is None:
            raise InputError("Give at least one point or a box.")
        if self.points is not None:
            bad = (self.points[:, 0] < 0) | (self.points[:, 0] >= width) | \
                  (self.points[:, 1] < 0) | (self.points[:, 1] >= height)
            if bad.any():
                x, y = self.points[bad][0]
                raise InputError(f"The point ({x:g}, {y:g}) is outside the {width}x{height} image.")
        box = self.box
        if box is not None:
            x0, y0, x1, y1 = box
            if x1 < x0 or y1 < y0:
                raise InputError(f"The box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is inverted; give it as "
                                 f"[x0, y0, x1, y1] with x0 < x1 and y0 < y1.")
            box = np.array([np.clip(x0, 0, width - 1), np.clip(y0, 0, height - 1),
                            np.clip(x1, 0, width - 1), np.clip(y1, 0, height - 1)])
            if box[2] <= box[0] or box[3] <= box[1]:
                raise InputError(f"The box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) has no area inside the "
                                 f"{width}x{height} image.")
        return Prompt(self.points, self.labels, box, self.mask_input, self.multimask)


@dataclass
class Prediction:
    """Masks at the original image size, best first by the model's predicted IoU."""

    masks: np.ndarray  # (K, H, W) bool
    scores: np.ndarray  # (K,) predicted IoU
    logits: np.ndarray  # (K, 256, 256) low-res logits; feed logits[i] back as mask_input
    decode_ms: float


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
        self.cache = cache or shared_cache()
        self._current: Embedding | None = None

    @property
    def backend(self) -> str:
        return self.engine.name

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
    def set_image(self, image: np.ndarray) -> Embedding:
        """Encode an RGB uint8 image, or reuse its cached embedding; it becomes the current image."""
        rgb = as_rgb(image)
        key = image_key(self.embedding_name, rgb)

        def encode() -> Embedding:
            start = time.perf_counter()
            x, geo = self.spec.preprocessing.image(rgb)
            feats = self.engine.encode(x.to(self.device))
            return Embedding(key, feats, geo, (time.perf_counter() - start) * 1e3)

        emb, cached = self.cache.get_or_compute(key, encode)
        if cached:
            emb = Embedding(emb.key, emb.features, emb.geometry, emb.encode_ms, cached=True)
        self._current = emb
        return emb

    def predict(self, points: Any = None, labels: Any = None, box: Any = None, multimask: bool = True,
                mask_input: Any = None, embedding: Embedding | None = None) -> Prediction:
        """Segment the current image (or ``embedding``) from one prompt."""
        prompt = Prompt.make(points, labels, box, mask_input, multimask)
        return self.predict_batch([prompt], embedding)[0]

    @torch.inference_mode()
    def predict_batch(self, prompts: Sequence[Prompt | Mapping[str, Any]],
                      embedding: Embedding | None = None) -> list[Prediction]:
        """Segment many prompts on one image, grouping compatible prompts into one decoder call.

        Prompts with the same number of points, box/no box, mask input/none and multimask flag
        form one batch, so each result equals what ``predict`` gives for that prompt alone.
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


def decode_prompts(model: torch.nn.Module, prompts: list[Prompt], emb: Embedding) -> tuple[torch.Tensor, torch.Tensor]:
    """One prompt-encoder + mask-decoder call for checked prompts of identical structure.

    Returns low-res logits (B, C, 256, 256) and predicted IoU (B, C), in the decoder's order.
    Differentiable: training calls it directly.
    """
    sparse, dense = prompt_embeddings(model, prompts, emb)
    return model.mask_decoder(
        image_embeddings=emb.features, image_pe=model.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=prompts[0].multimask)


def prompt_embeddings(model: torch.nn.Module, prompts: list[Prompt],
                      emb: Embedding) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompt encoder's sparse and dense embeddings of checked prompts of identical structure."""
    device = emb.features.device
    scale = torch.as_tensor(emb.geometry.scale, dtype=torch.float32, device=device)
    first = prompts[0]
    points = boxes = masks = None
    if first.points is not None:
        coords = torch.as_tensor(np.stack([p.points for p in prompts]), dtype=torch.float32, device=device) * scale
        labels = torch.as_tensor(np.stack([p.labels for p in prompts]), dtype=torch.int64, device=device)
        points = (coords, labels)
    if first.box is not None:
        boxes = torch.as_tensor(np.stack([p.box for p in prompts]), dtype=torch.float32,
                                device=device) * scale.repeat(2)
    if first.mask_input is not None:
        masks = torch.as_tensor(np.stack([p.mask_input for p in prompts])[:, None], device=device)
    return model.prompt_encoder(points=points, boxes=boxes, masks=masks)


def _groups(prompts: Iterable[Prompt]) -> list[list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(prompts):
        key = (0 if p.points is None else len(p.points), p.box is None, p.mask_input is None, p.multimask)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


_LOADED: dict[tuple, Predictor] = {}
_LOAD_LOCK = threading.Lock()


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
        precision: ``f32`` or ``bf16`` for OpenVINO (default: ``MEDSAM_PRECISION``, else f32).

    Returns:
        The shared ``Predictor`` for these arguments.

    Raises:
        MedsamError: an unknown model; ``ModelUnavailableError`` for an unknown or uninstalled backend or a
            checkpoint that is missing and not downloaded, ``CheckpointError`` for one that fails its checks.
    """
    spec = get_spec(name)
    engine = resolve(backend, device)
    precision = precision or settings().precision
    with _LOAD_LOCK:
        key = (name, str(device), engine, threads, precision)
        if key not in _LOADED or _LOADED[key].spec is not spec:
            _LOADED[key] = Predictor(spec, build_model(spec, download), device=device, backend=engine,
                                     threads=threads, precision=precision)
        return _LOADED[key]


def list_models() -> list[dict]:
    """Every registered model with its metadata and whether its checkpoint is ready offline."""
    return [model_info(spec) for spec in REGISTRY.values()]
