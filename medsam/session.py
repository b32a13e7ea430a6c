"""A user's prompting session, without any Gradio: image, view, prompts, ground truth, model results.

The UI keeps one ``Session`` per browser tab; every handler is a small function from a session and
an action to a new view. Examples (``gallery.Example``) open with their mask and suggested box.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import imaging
from .decoding import MAX_POINTS, Prediction, Prompt
from .errors import InputError, MedsamError
from .export import dicom_seg, label_map_nifti
from .gallery import EXPERT, Example
from .metrics import segmentation_scores
from .model_notes import encode_s, encoding_note, first_use_s, loading_note
from .objects import LabelMap
from .predictor import load_model, loaded_models
from .prompts import bbox
from .volume import propagate_keys, volume_ml

AXES = {"Axial": 2, "Coronal": 1, "Sagittal": 0}
MODES = ("Positive point", "Negative point", "Box (2 clicks)")
EXPORT_TTL_S = 600
"""Exported masks are deleted after this many seconds (Gradio has copied what it serves by then)."""
_EXPORT_DIR = Path(tempfile.mkdtemp(prefix="medsam-export-"))
atexit.register(shutil.rmtree, _EXPORT_DIR, ignore_errors=True)

Notify = Callable[[str, float | None], None]
"""Told what a slow step is doing and the seconds it should take (None: not measured)."""


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


def run_model(model: str, rgb: np.ndarray, prompt: Prompt, gt: np.ndarray | None = None,
              notify: Notify | None = None) -> ModelRun:
    """Encode (or reuse the cached embedding) and decode one prompt; errors become ``run.error``.
    ``notify(text, seconds)`` hears, before any slow step, what is happening and how long it should
    take (seconds measured on this kind of machine, or None)."""
    try:
        if notify and model not in loaded_models():
            notify(loading_note(model), first_use_s(model))
        predictor = load_model(model)
        before_encode = (lambda: notify(encoding_note(model), encode_s(model))) if notify else None
        emb = predictor.set_image(rgb, before_encode=before_encode)
        pred = predictor.predict_batch([prompt], embedding=emb)[0]
    except MedsamError as exc:
        return ModelRun(model, error=str(exc))
    run = ModelRun(model, pred, 0, emb.encode_ms, emb.cached)
    score(run, gt)
    return run


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
    objects: LabelMap | None = None  # a volume's objects segmented through it (``propagate``)

    # --- image and view -------------------------------------------------------------------
    def load(self, source: str | Path | bytes | list[str | Path], filename: str | None = None,
             scan: imaging.Scan | None = None) -> None:
        """Open a picture, DICOM file or NIfTI volume; a folder, a .zip or several files as a DICOM
        series (``scan``: the file already loaded)."""
        scan = scan or imaging.load_any(source, filename)
        self.__init__()  # type: ignore[misc]  # a new image starts a fresh session
        self.scan, self.filename = scan, filename or _name(source)
        self.window = scan.default_window
        self.index = scan.n_slices(2) // 2 if scan.is_volume else None
        self.render()

    def set_view(self, axis: int | None = None, index: int | None = None,
                 window: imaging.WindowSpec | None = None) -> None:
        """Change slice or window; a new slice clears the prompts (they belong to one image). A 2D
        picture has no slices: ``axis`` and ``index`` are ignored for it."""
        if self.scan is None:
            raise InputError("Load an image first.")
        moved = (axis is not None and axis != self.axis) or (index is not None and index != self.index)
        if self.scan.is_volume and moved:
            self.axis = self.axis if axis is None else axis
            self.index = min(self.scan.n_slices(self.axis) - 1, self.index or 0) if index is None else index
            self.clear()
        if window is not None:
            self.window = window
        self.render()

    def render(self) -> None:
        assert self.scan is not None
        self.rgb = self.scan.render(self.window, self.axis, self.index)
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
    def predict(self, models: list[str], notify: Notify | None = None) -> None:
        """Run ``models`` on the current prompt (``notify``: see ``run_model``)."""
        prompt = self.prompt()
        if prompt is None or self.rgb is None:
            self.runs = []
            return
        self.runs = [run_model(m, self.rgb, prompt, self.gt, notify) for m in dict.fromkeys(models)]

    def choose(self, candidate: int) -> None:
        """Show another of the first model's candidate masks."""
        if self.runs and self.runs[0].prediction is not None:
            self.runs[0].chosen = int(np.clip(candidate, 0, len(self.runs[0].prediction.scores) - 1))
            self.rescore()

    # --- volumes: objects through the whole volume -------------------------------------------------
    def object_name(self) -> str:
        """The name a new object gets: the example's object, else "object N"."""
        taken = {o.name for o in self.objects.objects.values()} if self.objects else set()
        if self.example is not None and self.example.object not in taken:
            return self.example.object
        return next(f"object {n}" for n in range(1, 10_000) if f"object {n}" not in taken)

    def new_object(self, name: str | None = None) -> None:
        """Start another object of the volume; the next propagation fills it."""
        if self.scan is None or not self.scan.is_volume:
            raise InputError("Objects belong to a volume: load a NIfTI file or a DICOM series first.")
        self.objects = self.objects or LabelMap.empty(self.scan)
        self.objects.add((name or "").strip() or self.object_name(), self.gt_values)

    def mark_key(self) -> None:
        """Keep this slice's prompt as one of the current object's key slices (a new object if none)."""
        if self.scan is None or not self.scan.is_volume:
            raise InputError("Propagation needs a volume: load a NIfTI file or a DICOM series first.")
        prompt = self.prompt()
        if prompt is None:
            raise InputError("Prompt the object on one slice first: a box, or clicks with a click-trained model.")
        if not self.objects or not self.objects.current:
            self.new_object()
        self.objects.objects[self.objects.current].mark(self.axis, self.index or 0, prompt)

    def propagate(self, model: str, progress: Callable[[float, str], None] | None = None) -> str:
        """Segment the current object through the volume from its prompted slices, this one included
        (``volume.propagate_keys``); returns a sentence."""
        self.mark_key()
        obj = self.objects.objects[self.objects.current]
        run = propagate_keys(load_model(model), self.scan, self.window, self.axis, obj.keys, progress)
        self.objects.store(run)
        ml = volume_ml(run.mask, self.scan.spacing)
        ends = "; ".join(f"{d}: {why}" for d, why in run.stopped.items())
        prompted = (f"from slice {run.keys[0]}" if len(run.keys) == 1 else
                    f"from slices {', '.join(map(str, run.keys))} (boxes interpolated between them)")
        return (f"Propagated **{obj.name}** {prompted} through slices {run.slices[0]}-{run.slices[-1]} "
                f"({len(run.slices)} slices, {ml:.1f} mL) in {run.seconds:.1f} s, {run.encoded} slices encoded. "
                f"Stopped {ends}.")

    def object_rows(self) -> list[dict]:
        reference = self.gt_scan.data if self.gt_scan is not None else None
        return self.objects.rows(self.scan, reference) if self.objects and self.scan is not None else []

    def export(self) -> list[Path]:
        """Each model's chosen mask as PNG (named by model when several were compared), and as NIfTI
        in the source volume for a volume's slice; a volume's objects as a NIfTI label map (and a
        DICOM-SEG for a DICOM series)."""
        runs = [run for run in self.runs if run.mask is not None]
        names = self.objects.names() if self.objects else {}
        if not runs and not names:
            raise InputError("There is no mask to export yet: add a prompt first.")
        folder = export_folder()
        stem = Path(self.filename).name.split(".")[0] or "image"
        files = []
        if names and self.scan is not None:
            files.append(label_map_nifti(self.objects.labels, self.scan, folder / f"{stem}_labels.nii.gz"))
            if self.scan.kind == "series" and self.scan.headers:
                files.append(dicom_seg(self.objects.labels, self.scan, self.scan.headers, names,
                                       folder / f"{stem}_seg.dcm"))
        for run in runs:
            name = f"{stem}_{run.model}_mask" if len(runs) > 1 else f"{stem}_mask"
            files.append(imaging.save_mask_png(run.mask, folder / f"{name}.png"))
            if self.scan is not None and self.scan.is_volume and self.scan.oriented:
                files.append(imaging.save_mask_nifti(run.mask, self.scan, self.axis, self.index,
                                                     folder / f"{name}.nii.gz"))
        return files


@functools.lru_cache(maxsize=8)
def example_scan(path: Path) -> imaging.Scan:
    """An example's image or volume, read once (examples are files that do not change; sessions
    never modify a scan)."""
    return imaging.load_any(path)


def _name(source: str | Path | bytes | list[str | Path]) -> str:
    if isinstance(source, (list, tuple)):
        return Path(str(source[0])).parent.name if len(source) > 1 else Path(str(source[0])).name
    return "" if isinstance(source, bytes) else Path(str(source)).name


def export_folder() -> Path:
    """A new folder for one export's files, deleted after EXPORT_TTL_S seconds (older ones go now)."""
    _prune_exports()
    return Path(tempfile.mkdtemp(dir=_EXPORT_DIR))


def _prune_exports(max_age_s: float = EXPORT_TTL_S) -> None:
    """Delete export folders older than ``max_age_s``, so that exports do not pile up on disk."""
    cutoff = time.time() - max_age_s
    for folder in _EXPORT_DIR.iterdir():
        try:
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        except FileNotFoundError:  # removed by a concurrent request
            pass
