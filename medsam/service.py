"""What the app computes beyond a session, without any Gradio: the stateless API calls, prompt
advice, prompt-free heads and everything mode. ``segment_files`` and ``everything_files`` are the
``/segment`` and ``/everything`` endpoints' work: files in, mask (or label map) and numbers out.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import automatic, heads
from .errors import InputError
from .gallery import modality_name
from .metrics import dice
from .models import REGISTRY, get_spec
from .predictor import Prompt, load_model
from .session import Session, export_folder, run_model

log = logging.getLogger(__name__)
MAX_PROMPT_CHARS = 1_000_000
"""Longest prompts JSON that ``segment_files`` parses; MAX_POINTS then bounds the points it may hold."""
EVERYTHING_GRID = 16
"""Points per side of everything mode's grid in the app and the API."""


def prompt_advice(model: str, prompt: Prompt) -> str | None:
    """A warning when the prompt type is one the model was not trained with."""
    spec = get_spec(model)
    if spec.prompts == "box" and prompt.box is None:
        return (f"{spec.title} was trained with box prompts only; clicks alone give near-empty masks. "
                f"Draw a box (clicks added to a box are fine).")
    return None


@functools.lru_cache(maxsize=8)
def _saved_head(path: Path, mtime: float) -> heads.SavedHead:
    return heads.load_head(path)


def head_label(path: Path) -> str:
    """What a saved head segments and on which images, e.g. "fetal head on ultrasound"."""
    saved = _saved_head(Path(path), Path(path).stat().st_mtime)
    classes = ", ".join(c.replace("_", " ") for c in saved.classes)
    return f"{classes} on {modality_name(saved.modality)}" if saved.modality else classes


def segment_with_head(path: Path, rgb: np.ndarray, gt: np.ndarray | None = None,
                      modality: str | None = None) -> tuple[np.ndarray, str]:
    """Prompt-free segmentation with a saved AutoSAM-style head: a label map (0 background, i for
    the head's i-th class) and sentences (what it was trained on, classes, areas, DICE against
    ``gt``, time, and a warning when ``modality``, the image's if known, is not the head's)."""
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
    note = f"Prompt-free {saved.kind} head{trained}: {found} ({ms:.0f} ms)."
    if saved.modality and modality and modality.lower() != saved.modality.lower():
        note += (f" **This is a {modality_name(modality)} image, but the head was trained on "
                 f"{modality_name(saved.modality)} images only: its output means nothing here.**")
    elif saved.modality and not modality:
        note += (f" It was trained on {modality_name(saved.modality)} images only; on other kinds of "
                 f"images its output means nothing.")
    return labels, note


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
    png = export_folder() / f"{Path(session.filename).name.split('.')[0] or 'image'}_everything.png"
    Image.fromarray(labels.astype(np.uint8 if len(result.masks) < 256 else np.uint16)).save(png, format="PNG")
    f = result.filters
    return png, {"model": model, "masks": len(result.masks), "seconds": round(seconds, 2), "grid": EVERYTHING_GRID,
                 "candidates": result.tally.candidates, "passed_filters": result.tally.passed,
                 "filters": {"pred_iou": f.pred_iou, "stability": f.stability},
                 "scores": [round(m.score, 4) for m in result.masks],
                 "stability": [round(m.stability, 4) for m in result.masks], "areas": [m.area for m in result.masks],
                 "encode_ms": round(emb.encode_ms, 1), "embedding_cached": emb.cached,
                 "image_size": list(session.rgb.shape[1::-1]), "note": automatic.describe(result, predictor.spec)}


def open_files(image: str | Path, ground_truth: str | Path | None = None) -> Session:
    """A session on an uploaded image (a volume: its middle axial slice) and its optional mask."""
    session = Session()
    session.load(image, Path(str(image)).name)
    if ground_truth:
        session.set_gt(ground_truth, Path(str(ground_truth)).name)
    return session


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
    session = open_files(image, ground_truth)
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


def _label_values(text: str | None) -> tuple[int, ...] | None:
    if not text or not str(text).strip():
        return None
    try:
        return tuple(int(v) for v in str(text).replace(" ", "").split(","))
    except ValueError as exc:
        raise InputError(f"Label values must be whole numbers separated by commas, like \"1,2\", "
                         f"not {text!r}.") from exc


def _volume_prompts(text: str) -> list[tuple[int, int, np.ndarray, np.ndarray, list[int]]]:
    """``segment_volume``'s prompts JSON (one prompt or a list, all on one axis) -> (axis, slice,
    box corners (2, 2) or (0, 2), points (N, 2), labels) per prompt."""
    try:
        raw = json.loads(text)
        out = [(int(p["axis"]), int(p["slice"]), np.asarray(p.get("box") or [], float).reshape(-1, 2),
                np.asarray(p.get("points") or [], float).reshape(-1, 2), [int(v) for v in p.get("labels") or []])
               for p in (raw if isinstance(raw, list) else [raw])]
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise InputError('Prompts must be JSON like {"axis": 2, "slice": 40, "box": [x0, y0, x1, y1]} in the '
                         'file\'s voxel indices, or a list of such prompts on slices of one axis.') from exc
    if not out:
        raise InputError("Give at least one prompt.")
    if len({axis for axis, *_ in out}) > 1:
        raise InputError("All prompts must be on slices of the same axis.")
    return out


def segment_volume_files(volume: str | Path, prompts: str, model: str = "litemedsam",
                         reference: str | Path | None = None, label_values: str | None = None
                         ) -> tuple[Path, dict[str, Any]]:
    """The API's ``segment_volume``: a NIfTI file or a .zip of a DICOM series and prompts on one or more
    slices -> the structure propagated through the volume as a NIfTI label map on the input's voxel
    grid (1 = the object), and numbers (3D scores against ``reference`` restricted to ``label_values``).

    ``prompts`` is ``{"axis": 2, "slice": k, "box": [x0, y0, x1, y1], "points": [[x, y]], "labels": [1]}``
    in voxel indices of the file's own array as nibabel returns it (a DICOM series: columns, rows,
    slices in position order): x along the first axis other than ``axis``, y along the second. A list
    of such prompts on slices of one axis gives key slices (``volume.propagate_keys``): the slices
    between two of them are prompted with interpolated boxes.
    """
    get_spec(model)
    if len(prompts) > MAX_PROMPT_CHARS:
        raise InputError(f"The prompts are {len(prompts):,} characters long; the limit is {MAX_PROMPT_CHARS:,}.")
    specs = _volume_prompts(prompts)
    session = Session()
    session.load(volume, Path(str(volume)).name)
    scan = session.scan
    if scan is None or not scan.is_volume:
        raise InputError("The file is not a volume: give a NIfTI volume or a .zip of a DICOM series.")
    if reference:
        session.set_gt(reference, Path(str(reference)).name, _label_values(label_values))
    for axis, index, corners, points, labels in specs:
        data_axis, data_index, view = scan.source_to_view(axis, index, np.concatenate([corners, points]))
        session.set_view(data_axis, data_index)
        session.clear()
        if len(corners):
            lo, hi = view[:2].min(axis=0), view[:2].max(axis=0)
            session.box = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
        session.points = [tuple(p) for p in view[2:]]
        session.labels = labels or [1] * len(points)
        session.mark_key()
    note = session.propagate(model)
    run = session.objects.objects[session.objects.current].run
    session.runs = []
    files = session.export()
    row = session.object_rows()[0]
    info = {"model": model, "volume_ml": row["volume_ml"], "slices": run.slices, "axis": specs[0][0],
            "seconds": round(run.seconds, 2), "encoded": run.encoded, "stopped": run.stopped, "note": note,
            **{k: row.get(k) for k in ("dice3d", "nsd2mm", "hd95_mm")}}
    return files[0], info
