"""What the app computes, without any Gradio: a prompting session and the stateless API call.

The UI keeps one ``Session`` per browser tab; every handler is a small function from a session and
an action to a new view. ``segment_files`` and ``everything_files`` are the API endpoints' work: files
in, mask (or label map) and numbers out.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from . import automatic, imaging
from .errors import InputError, MedsamError
from .finetune import heads
from .gallery import EXPERT, Example
from .metrics import dice, segmentation_scores
from .models import REGISTRY, get_spec
from .predictor import MAX_POINTS, Prediction, Prompt, list_models, load_model
from .prompts import bbox
from . import series

log = logging.getLogger(__name__)
AXES = {"Axial": 2, "Coronal": 1, "Sagittal": 0}
MODES = ("Positive point", "Negative point", "Box (2 clicks)")
MAX_PROMPT_CHARS = 1_000_000
"""Longest prompts JSON that ``segment_files`` parses; MAX_POINTS then bounds the points it may hold."""
EVERYTHING_GRID = 16
"""Points per side of everything mode's grid in the app and the API."""
EXPORT_TTL_S = 600
"""Exported masks are deleted after this many seconds (Gradio has copied what it serves by then)."""
_EXPORT_DIR = Path(tempfile.mkdtemp(prefix="medsam-export-"))
atexit.register(shutil.rmtree, _EXPORT_DIR, ignore_errors=True)


@dataclass
class ModelRun:
    """One model's answer to the current prompts."""

    model: str
    prediction: Prediction | None = None
    chosen: int = 0  # which candidate is shown (best predicted IoU first)
    encode_ms: float = 0.0
    cached: bool = False
    scores: dict[str, float] | None = None  # against the ground truth, for the chosen candidate
    error: str | None = None

    @property
    def mask(self) -> np.ndarray | None:
        return None if self.prediction is None else self.prediction.masks[self.chosen]

    def summary(self) -> dict[str, Any]:
        """One row of numbers for tables and the API."""
        row: dict[str, Any] = {"model": self.model}
        if self.error:
            return row | {"error": self.error}
        pred = self.prediction
        assert pred is not None
        row |= {"candidate": self.chosen + 1, "predicted_iou": round(float(pred.scores[self.chosen]), 4),
                "candidate_scores": [round(float(s), 4) for s in pred.scores],
                "encode_ms": round(self.encode_ms, 1), "embedding_cached": self.cached,
                "decode_ms": round(pred.decode_ms, 1), "mask_pixels": int(pred.masks[self.chosen].sum())}
        if self.scores:
            row |= {k: (round(v, 4) if np.isfinite(v) else None) for k, v in self.scores.items()}
        return row


def prompt_advice(model: str, prompt: Prompt) -> str | None:
    """A warning when the prompt type is one the model was not trained with."""
    spec = get_spec(model)
    if spec.prompts == "box" and prompt.box is None:
        return (f"{spec.title} was trained with box prompts only; clicks alone give near-empty masks. "
                f"Draw a box (clicks added to a box are fine).")
    return None


def run_model(model: str, rgb: np.ndarray, prompt: Prompt, gt: np.ndarray | None = None) -> ModelRun:
    """Encode (or reuse the cached embedding) and decode one prompt; errors become ``run.error``."""
    try:
        predictor = load_model(model)
        emb = predictor.set_image(rgb)
        pred = predictor.predict_batch([prompt], embedding=emb)[0]
    except MedsamError as exc:
        return ModelRun(model, error=str(exc))
    run = ModelRun(model, pred, 0, emb.encode_ms, emb.cached)
    score(run, gt)
    return run


@functools.lru_cache(maxsize=8)
def _saved_head(path: Path, mtime: float) -> heads.SavedHead:
    return heads.load_head(path)


def segment_with_head(path: Path, rgb: np.ndarray, gt: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """Prompt-free segmentation with a saved AutoSAM-style head: a label map (0 background, i for
    the head's i-th class) and one sentence (classes, areas, DICE against ``gt``, time)."""
    saved = _saved_head(Path(path), Path(path).stat().st_mtime)
    start = time.perf_counter()
    masks = heads.predict_head(saved.model, saved.kind, rgb, load_model(heads.ENCODER))
    ms = (time.perf_counter() - start) * 1e3
    labels = np.zeros(rgb.shape[:2], np.int32)
    for i, mask in enumerate(masks, 1):
        labels[mask] = i
    found = "; ".join(f"{c}: {m.mean():.1%} of the image" + (f", DICE {dice(m, gt):.3f}" if gt is not None else "")
                      for c, m in zip(saved.classes, masks))
    trained = f", trained on {saved.trained_on}" if saved.trained_on else ""
    return labels, f"Prompt-free {saved.kind} head{trained}: {found} ({ms:.0f} ms)."


def everything(model: str, rgb: np.ndarray, progress: Callable[[float], None] | None = None
               ) -> tuple[np.ndarray, str]:
    """Automatic masks from a 16x16 point grid: a label map (largest painted first) and sentences
    saying what was found, or why nothing was, for this model."""
    predictor = load_model(model)
    result = automatic.generate(predictor, predictor.set_image(rgb), EVERYTHING_GRID, progress=progress)
    return automatic.label_map(result.masks, rgb.shape[:2]), automatic.describe(result, predictor.spec)


def everything_files(image: str | Path, model: str = "litemedsam") -> tuple[Path, dict[str, Any]]:
    """The API's ``everything``: an image file (a volume: its middle axial slice) -> a label-map PNG
    (0 none, i the i-th mask of ``scores``; 16-bit beyond 255 masks) and numbers. The PNG is deleted
    after EXPORT_TTL_S seconds."""
    if model not in REGISTRY:
        get_spec(model)  # raises the plain "Unknown model" message
    session = Session()
    session.load(image, Path(str(image)).name)
    assert session.rgb is not None
    start = time.perf_counter()
    predictor = load_model(model)
    emb = predictor.set_image(session.rgb)
    result = automatic.generate(predictor, emb, EVERYTHING_GRID)
    seconds = time.perf_counter() - start
    labels = automatic.label_map(result.masks, session.rgb.shape[:2])
    _prune_exports()
    png = Path(tempfile.mkdtemp(dir=_EXPORT_DIR)) / f"{Path(session.filename).name.split('.')[0] or 'image'}_everything.png"
    Image.fromarray(labels.astype(np.uint8 if len(result.masks) < 256 else np.uint16)).save(png, format="PNG")
    f = result.filters
    return png, {"model": model, "masks": len(result.masks), "seconds": round(seconds, 2), "grid": EVERYTHING_GRID,
                 "candidates": result.tally.candidates, "passed_filters": result.tally.passed,
                 "filters": {"pred_iou": f.pred_iou, "stability": f.stability},
                 "scores": [round(m.score, 4) for m in result.masks],
                 "stability": [round(m.stability, 4) for m in result.masks], "areas": [m.area for m in result.masks],
                 "encode_ms": round(emb.encode_ms, 1), "embedding_cached": emb.cached,
                 "image_size": list(session.rgb.shape[1::-1]), "note": automatic.describe(result, predictor.spec)}


def score(run: ModelRun, gt: np.ndarray | None) -> None:
    """Fill DICE/IoU/HD95 of the chosen candidate against the ground truth, if there is one."""
    if gt is not None and run.mask is not None:
        s = segmentation_scores(run.mask, gt)
        run.scores = {"dice": s["dice"], "iou": s["iou"], "hd95": s["hd95"]}


@dataclass
class Session:
    """One user's image, view, prompts, ground truth and latest results."""

    scan: imaging.Scan | None = None
    filename: str = ""
    axis: int = 2
    index: int | None = None
    window: imaging.WindowSpec = imaging.STORED
    rgb: np.ndarray | None = None
    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None
    corner: tuple[float, float] | None = None
    history: list[tuple[str, Any]] = field(default_factory=list)  # for undo
    gt_scan: imaging.Scan | None = None
    gt_values: tuple[int, ...] | None = None  # label values that make up the object in a label volume
    gt: np.ndarray | None = None
    reference: str = EXPERT  # what the mask is: expert ground truth, or e.g. a model's prediction
    example: Example | None = None
    runs: list[ModelRun] = field(default_factory=list)

    # --- image and view -------------------------------------------------------------------
    def load(self, source: str | Path | bytes | list[str | Path], filename: str | None = None,
             scan: imaging.Scan | None = None) -> None:
        """Open a picture, DICOM file or NIfTI volume; a folder, a .zip or several files as a DICOM
        series (``scan``: the file already loaded)."""
        scan = scan or load_any(source, filename)
        self.__init__()  # type: ignore[misc]  # a new image starts a fresh session
        self.scan, self.filename = scan, filename or _name(source)
        self.window = scan.default_window
        self.index = scan.n_slices(2) // 2 if scan.is_volume else None
        self.render()

    def set_view(self, axis: int | None = None, index: int | None = None,
                 window: imaging.WindowSpec | None = None) -> None:
        """Change slice or window; a new slice clears the prompts (they belong to one image)."""
        if self.scan is None:
            raise InputError("Load an image first.")
        if (axis is not None and axis != self.axis) or (index is not None and index != self.index):
            self.axis = self.axis if axis is None else axis
            self.index = min(self.scan.n_slices(self.axis) - 1, self.index or 0) if index is None else index
            self.clear()
        if window is not None:
            self.window = window
        self.render()

    def render(self) -> None:
        assert self.scan is not None
        plane = self.scan.slice(self.axis, self.index) if self.scan.is_volume else self.scan.data
        self.rgb = imaging.to_rgb(imaging.apply_window(plane, self.window))
        self._slice_gt()

    # --- ground truth ---------------------------------------------------------------------
    def set_gt(self, source: str | Path | None, filename: str | None = None,
               values: tuple[int, ...] | None = None, reference: str = EXPERT) -> None:
        """A binary mask, or for a volume a mask or label volume (``values``: the labels of the object)."""
        self.reference = reference
        if source is None:
            self.gt_scan, self.gt, self.gt_values = None, None, None
            self.rescore()
            return
        if self.rgb is None:
            raise InputError("Load an image before its ground-truth mask.")
        name = (filename or str(source)).lower()
        if self.scan is not None and self.scan.is_volume and name.endswith((".nii", ".nii.gz")):
            gt_scan = imaging.load_scan(source, filename)
            if gt_scan.data.shape != self.scan.data.shape:
                raise InputError(f"The mask volume has shape {gt_scan.data.shape} but the image volume "
                                 f"has {self.scan.data.shape}.")
            self.gt_scan, self.gt_values = gt_scan, values
            self._slice_gt()
        else:
            self.gt_scan, self.gt_values = None, None
            self.gt = imaging.load_mask(source, self.rgb.shape[:2], filename)
        self.rescore()

    def _object_voxels(self, data: np.ndarray) -> np.ndarray:
        return np.isin(data, self.gt_values) if self.gt_values else data > 0

    def _slice_gt(self) -> None:
        if self.gt_scan is not None:
            self.gt = self._object_voxels(self.gt_scan.slice(self.axis, self.index))

    def open_example(self, example: Example) -> None:
        """Load an example with its mask; a volume opens on the axial slice where the object is
        largest. The suggested box (a volume's: the mask's tight box on that slice) is set."""
        self.load(example.image, scan=example_scan(example.image))
        self.set_gt(example.mask, example.mask.name, example.label_values, example.reference)
        self.example = example
        box = example.box
        if example.is_volume and self.gt_scan is not None:
            voxels = self._object_voxels(self.gt_scan.data)
            self.set_view(2, int(np.argmax(voxels.sum(axis=(0, 1)))))
            assert self.gt is not None
            box = tuple(int(v) for v in bbox(self.gt)) if self.gt.any() else None
        if box is not None:
            self.box = tuple(float(v) for v in box)  # type: ignore[assignment]
            self.history.append(("box", None))

    def rescore(self) -> None:
        for run in self.runs:
            run.scores = None
            score(run, self.gt)

    # --- prompts --------------------------------------------------------------------------
    def click(self, x: float, y: float, mode: str) -> None:
        if self.rgb is None:
            raise InputError("Load an image first, then click on it.")
        h, w = self.rgb.shape[:2]
        if not (0 <= x < w and 0 <= y < h):
            raise InputError(f"The click ({x:g}, {y:g}) is outside the {w}x{h} image.")
        if mode != MODES[2] and len(self.points) >= MAX_POINTS:
            raise InputError(f"The prompt already has {MAX_POINTS} points, the most allowed; undo or clear some first.")
        if mode == MODES[2]:
            if self.corner is None:
                self.corner = (x, y)
                self.history.append(("corner", None))
                return
            (x0, y0), self.corner = self.corner, None
            self.history[-1] = ("box", self.box)  # undo restores the previous box
            self.box = (min(x0, x), min(y0, y), max(x0, x), max(y0, y))
        else:
            self.points.append((x, y))
            self.labels.append(1 if mode == MODES[0] else 0)
            self.history.append(("point", None))

    def undo(self) -> None:
        if not self.history:
            return
        kind, previous = self.history.pop()
        if kind == "point":
            self.points.pop()
            self.labels.pop()
        elif kind == "corner":
            self.corner = None
        else:
            self.box = previous

    def clear(self) -> None:
        self.points, self.labels, self.box, self.corner, self.history, self.runs = [], [], None, None, [], []

    def prompt(self) -> Prompt | None:
        if not self.points and self.box is None:
            return None
        return Prompt.make(self.points, self.labels, self.box, multimask=True)

    # --- models ---------------------------------------------------------------------------
    def predict(self, models: list[str]) -> None:
        prompt = self.prompt()
        if prompt is None or self.rgb is None:
            self.runs = []
            return
        self.runs = [run_model(m, self.rgb, prompt, self.gt) for m in dict.fromkeys(models)]

    def choose(self, candidate: int) -> None:
        """Show another of the first model's candidate masks."""
        if self.runs and self.runs[0].prediction is not None:
            self.runs[0].chosen = int(np.clip(candidate, 0, len(self.runs[0].prediction.scores) - 1))
            self.rescore()

    def export(self) -> list[Path]:
        """The first model's chosen mask as PNG, and as NIfTI in the source volume for a slice."""
        if not self.runs or self.runs[0].mask is None:
            raise InputError("There is no mask to export yet: add a prompt first.")
        mask = self.runs[0].mask
        _prune_exports()
        folder = Path(tempfile.mkdtemp(dir=_EXPORT_DIR))
        stem = Path(self.filename).name.split(".")[0] or "image"
        files = [imaging.save_mask_png(mask, folder / f"{stem}_mask.png")]
        if self.scan is not None and self.scan.is_volume and self.scan.oriented:
            files.append(imaging.save_mask_nifti(mask, self.scan, self.axis, self.index,
                                                 folder / f"{stem}_mask.nii.gz"))
        return files


def load_any(source: str | Path | bytes | list[str | Path], filename: str | None = None) -> imaging.Scan:
    """One file as a picture, DICOM file or NIfTI volume; a folder, a .zip, or several files as one
    DICOM series."""
    paths = list(source) if isinstance(source, (list, tuple)) else None
    if paths is not None and len(paths) == 1:
        source, paths = paths[0], None
    if paths is not None:
        if not paths:
            raise InputError("No file was given.")
        return series.load_series(paths)
    if isinstance(source, (str, Path)) and (Path(source).is_dir() or str(source).lower().endswith(".zip")):
        return series.load_series(source)
    if isinstance(source, bytes) and series.is_zip(source):
        return series.load_series(source)
    return imaging.load_scan(source, filename)


@functools.lru_cache(maxsize=8)
def example_scan(path: Path) -> imaging.Scan:
    """An example's image or volume, read once (examples are files that do not change; sessions
    never modify a scan)."""
    return load_any(path)


def _name(source: str | Path | bytes | list[str | Path]) -> str:
    if isinstance(source, (list, tuple)):
        return Path(str(source[0])).parent.name if len(source) > 1 else Path(str(source[0])).name
    return "" if isinstance(source, bytes) else Path(str(source)).name


def _prune_exports(max_age_s: float = EXPORT_TTL_S) -> None:
    """Delete export folders older than ``max_age_s``, so that exports do not pile up on disk."""
    cutoff = time.time() - max_age_s
    for folder in _EXPORT_DIR.iterdir():
        try:
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        except FileNotFoundError:  # removed by a concurrent request
            pass


def segment_files(image: str | Path, prompts: str | dict, model: str = "litemedsam",
                  ground_truth: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The API's ``segment``: an image file and JSON prompts -> mask PNG path and numbers.

    ``prompts`` is ``{"points": [[x, y], ...], "labels": [1, 0, ...], "box": [x0, y0, x1, y1]}``
    in pixels of the image (for a volume: of its middle axial slice). One request is one prompt: a box
    and/or at most MAX_POINTS points. The mask PNG is deleted after EXPORT_TTL_S seconds.
    """
    if isinstance(prompts, str) and len(prompts) > MAX_PROMPT_CHARS:
        raise InputError(f"The prompts are {len(prompts):,} characters long; the limit is {MAX_PROMPT_CHARS:,}.")
    try:
        spec = json.loads(prompts) if isinstance(prompts, str) else dict(prompts)
        if not isinstance(spec, dict):
            raise ValueError
    except (ValueError, TypeError, RecursionError) as exc:  # RecursionError: deeply nested JSON
        raise InputError('Prompts must be JSON like {"points": [[x, y]], "labels": [1], '
                         '"box": [x0, y0, x1, y1]}.') from exc
    unknown = set(spec) - {"points", "labels", "box", "multimask"}
    if unknown:
        raise InputError(f"Unknown prompt keys: {', '.join(sorted(unknown))}; use points, labels and box.")
    if model not in REGISTRY:
        get_spec(model)  # raises the plain "Unknown model" message
    session = Session()
    session.load(image, Path(str(image)).name)
    if ground_truth:
        session.set_gt(ground_truth, Path(str(ground_truth)).name)
    prompt = Prompt.make(spec.get("points"), spec.get("labels"), spec.get("box"),
                         multimask=spec.get("multimask", True))
    assert session.rgb is not None
    run = run_model(model, session.rgb, prompt, session.gt)
    if run.error:
        raise InputError(run.error)
    session.runs = [run]
    png = session.export()[0]
    info = run.summary() | {"image_size": list(session.rgb.shape[1::-1])}
    if advice := prompt_advice(model, prompt):
        info["warning"] = advice
    return png, info
