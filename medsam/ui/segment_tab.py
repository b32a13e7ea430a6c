"""The Segment tab: layout and event wiring; the work is done by ``medsam.service``.

``SegmentTab`` holds the components. Each handler takes the session and the controls' values and
returns ``{component: value}`` for what changed, so no handler counts its outputs by hand; failures
become a status line (``plain_errors``). The page opens on the gallery's first example, already
segmented with its suggested box.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from .. import heads, imaging, visualize
from ..errors import MedsamError
from ..gallery import Example, by_group
from ..model_notes import long_note, model_choices
from ..models import REGISTRY
from ..paths import shown
from ..predictor import list_models
from ..service import everything, head_label, segment_with_head
from ..session import AXES, MODES, Session
from .common import MODEL_WORK, PRIVATE, TimedProgress, picture, plain_errors
from .segment_view import NO_IMAGE, canvas, example_text, status_text, thumbnails

CUSTOM = "Custom level/width"
OBJECT_COLUMNS = ["object", "volume_ml", "slices", "dice3d", "nsd2mm", "hd95_mm"]
TABLE_COLUMNS = ["model", "dice", "iou", "hd95", "predicted_iou", "encode_ms", "embedding_cached", "decode_ms"]
HEADS_INFO = "Each head was trained on one dataset's images; on other kinds of images its output means nothing."
HEADS_HOWTO = ("train one with `python -m medsam.finetune heads --data DIR --datasets hc18 --save` "
               f"(saved to `{shown(heads.heads_dir())}`) and restart the app.")


def default_models() -> tuple[str, str]:
    """Our finetuned LiteMedSAM (clicks work) when its weights are present, compared with the
    LiteMedSAM it came from; otherwise LiteMedSAM and the next ready model."""
    ready = [m["name"] for m in list_models() if m["ready"]]
    if "litemedsam_ft" in ready:
        return "litemedsam_ft", "litemedsam"
    return "litemedsam", next((n for n in ready if n != "litemedsam"), next(n for n in REGISTRY if n != "litemedsam"))


def gallery_id(group: str) -> str:
    """The element id suffix of a gallery tab, e.g. "x-ray", "data-folder"."""
    return group.lower().replace(" ", "-")


def _models(model: str, compare: bool, model_b: str | None) -> list[str]:
    return [model, model_b] if compare and model_b else [model]



class SegmentTab:
    """The Segment tab's components; call inside ``with gr.Tab(...)``, then ``wire(demo)``."""

    def __init__(self, examples: list[Example]) -> None:
        self.examples = examples
        self.model_a, model_b = default_models()
        self.session = gr.State(None)
        if examples:
            self._gallery()
        with gr.Row(elem_id="segment-row"):
            with gr.Column(scale=1, min_width=300):
                self._controls(model_b)
            with gr.Column(scale=2):
                self.status = gr.Markdown(NO_IMAGE, elem_id="status")
                self.example_note = gr.Markdown("", elem_id="example-note")
                with gr.Row():
                    self.canvas = gr.Image(label="Click to prompt", interactive=False, type="numpy", elem_id="canvas")
                    self.canvas_b = gr.Image(label="Second model", interactive=False, type="numpy", visible=False,
                                             elem_id="canvas_b")
                self.candidates = gr.Gallery(label="Candidate masks, best first (click one to show it)", columns=3,
                                             height=220, allow_preview=False, elem_id="candidates")
                self.table = gr.Dataframe(headers=TABLE_COLUMNS, label="Numbers", interactive=False, elem_id="numbers")
                self.objects = gr.Dataframe(headers=OBJECT_COLUMNS, label="Objects in the volume (3D scores against "
                                            "the reference)", interactive=False, visible=False, elem_id="objects")
                self.auto_view = gr.Image(label="Everything mode: automatic masks", interactive=False, visible=False,
                                  elem_id="auto-view")
                self.head_view = gr.Image(label="Prompt-free head: its classes", interactive=False, visible=False,
                                          elem_id="head-view")
                self.files = gr.File(label="Exported masks", file_count="multiple", interactive=False, elem_id="files")
        self.view_out = [self.session, self.canvas, self.canvas_b, self.candidates, self.table, self.files,
                         self.status, self.example_note, self.auto_view, self.head_view, self.objects,
                         self.object_name]
        self.controls_out = [self.volume_box, self.index, self.window, self.level, self.width, self.custom_box]
        self.model_in = [self.model, self.compare, self.model_b]

    def _gallery(self) -> None:
        pictures = thumbnails(self.examples)
        self.galleries: list[tuple[gr.Gallery, list[int]]] = []
        with gr.Accordion("Examples: click one to open it with its mask and a suggested box", open=True,
                          elem_id="examples"):
            with gr.Tabs():
                for group, items in by_group(self.examples).items():
                    slug = gallery_id(group)
                    with gr.Tab(f"{group} ({len(items)})", elem_id=f"examples-{slug}"):
                        gallery = gr.Gallery([(pictures[i], ex.caption) for i, ex in items], columns=8,
                                             allow_preview=False, object_fit="contain", show_label=False,
                                             elem_id=f"gallery-{slug}")
                    self.galleries.append((gallery, [i for i, _ in items]))

    def _controls(self, model_b: str) -> None:
        self.upload = gr.File(label="Image: PNG, JPEG, BMP, TIFF, DICOM (a file, or a series as several files "
                                    "or a .zip) or NIfTI", type="filepath", file_count="multiple", elem_id="upload")
        with gr.Group(visible=False) as self.volume_box:
            self.axis = gr.Radio(list(AXES), value="Axial", label="Slice axis")
            self.index = gr.Slider(0, 1, step=1, value=0, label="Slice", elem_id="slice")
            self.object_name = gr.Textbox(label="Object (box it on one slice and propagate; box another slice and "
                                                "propagate again to add a key slice)",
                                          placeholder="e.g. liver", elem_id="object-name")
            with gr.Row():
                self.propagate = gr.Button("Propagate through the volume", variant="primary", elem_id="propagate")
                self.new_object = gr.Button("New object", elem_id="new-object")
        self.window = gr.Dropdown([*imaging.WINDOW_PRESETS, CUSTOM], value=imaging.STORED, label="Window",
                                  elem_id="window")
        with gr.Row(visible=False) as self.custom_box:
            self.level = gr.Number(40, label="Level", elem_id="level")
            self.width = gr.Number(400, label="Width", elem_id="width")
        self.gt_upload = gr.File(label="Ground-truth mask (optional, for DICE)", type="filepath", elem_id="gt_upload")
        self.model = gr.Dropdown(model_choices(), value=self.model_a, label="Model", elem_id="model")
        self.model_info = gr.Markdown(long_note(self.model_a), elem_id="model-info")
        self.compare = gr.Checkbox(False, label="Compare with a second model on the same prompts", elem_id="compare")
        self.model_b = gr.Dropdown(model_choices(), value=model_b, label="Second model", visible=False)
        self.mode = gr.Radio(list(MODES), value=MODES[0] if REGISTRY[self.model_a].prompts == "all" else MODES[2],
                             label="Click adds", elem_id="mode")
        with gr.Row():
            self.undo = gr.Button("Undo", elem_id="undo")
            self.clear = gr.Button("Clear", elem_id="clear")
        self.everything = gr.Button("Everything mode (automatic masks)", elem_id="everything")
        self.found_heads = heads.find_heads()
        self.head = gr.Dropdown([(f"{label} · {head_label(path)}", label) for label, path in self.found_heads.items()],
                                value=None, label="Prompt-free head (AutoSAM-style): segments one dataset's classes",
                                elem_id="head",
                                info=HEADS_INFO if self.found_heads else f"None saved yet: {HEADS_HOWTO}")
        self.head_button = gr.Button("Segment with the head (no prompts)", elem_id="head-run")
        self.export = gr.Button("Export mask", variant="primary", elem_id="export")

    # --- rendering ------------------------------------------------------------------------------
    def view(self, s: Session, models: list[str], predict: bool = False, progress: gr.Progress | None = None) -> dict:
        """Every view output from the session (after running the models on its prompts if asked;
        ``progress`` shows what a slow model load or encode is doing and how long it should take)."""
        if predict:
            with TimedProgress(progress) if progress else contextlib.nullcontext() as notify:
                s.predict(models, notify=notify)
        hidden = {self.auto_view: gr.update(value=None, visible=False),  # they showed an earlier state
                  self.head_view: gr.update(value=None, visible=False)}
        if s.rgb is None:
            return {self.session: s, self.canvas: None, self.canvas_b: None, self.candidates: [], self.table: None,
                    self.files: None, self.status: NO_IMAGE, self.example_note: "", **hidden}
        canvases: list[Any] = [gr.skip(), gr.skip()]  # the second canvas is drawn only when it is shown
        for i in range(max(len(models), 1)):
            canvases[i] = canvas(s, s.runs[i] if i < len(s.runs) else None)
        first = s.runs[0] if s.runs else None
        gallery = []
        if first and first.prediction is not None:
            gallery = [(picture(visualize.overlay(s.rgb, m)), f"#{k + 1}  predicted IoU {sc:.3f}")
                       for k, (m, sc) in enumerate(zip(first.prediction.masks, first.prediction.scores))]
        rows = [run.summary() for run in s.runs]
        table = [[r.get(c, "") if r.get(c) is not None else "" for c in TABLE_COLUMNS] for r in rows]
        objects = [[r.get(c, "") if r.get(c) is not None else "" for c in OBJECT_COLUMNS] for r in s.object_rows()]
        current = s.objects.objects.get(s.objects.current) if s.objects else None
        return {self.session: s, self.canvas: canvases[0], self.canvas_b: canvases[1], self.candidates: gallery,
                self.table: table, self.files: None, self.status: status_text(s, models),
                self.example_note: example_text(s.example), **hidden,
                self.objects: gr.update(value=objects, visible=bool(objects)),
                self.object_name: gr.update(value=current.name if current else s.object_name() if s.scan and
                                            s.scan.is_volume else "")}

    def controls(self, s: Session) -> dict:
        """Slice and window controls for the session's image."""
        scan = s.scan
        vol = scan is not None and scan.is_volume
        custom = isinstance(s.window, tuple)
        level, width = s.window if custom else (40.0, 400.0)
        return {self.volume_box: gr.update(visible=vol),
                self.index: gr.update(maximum=max((scan.n_slices(s.axis) if vol else 1) - 1, 1), value=s.index or 0),
                self.window: gr.update(value=CUSTOM if custom else s.window), self.level: gr.update(value=level),
                self.width: gr.update(value=width), self.custom_box: gr.update(visible=custom)}

    # --- handlers -------------------------------------------------------------------------------
    def on_open(self, index: int, m: str, c: bool, mb: str | None, progress=gr.Progress()) -> dict:
        """Open example ``index`` and segment it with its suggested box."""
        s = Session()
        s.open_example(self.examples[index])
        return {**self.view(s, _models(m, c, mb), predict=True, progress=progress), **self.controls(s)}

    def picker(self, members: list[int]) -> Callable[..., dict]:
        """The select handler of a gallery showing the examples ``members`` (Gradio reads the
        ``SelectData`` annotation of a plain function, not of a partial)."""
        def on_pick(m: str, c: bool, mb: str | None, evt: gr.SelectData, progress=gr.Progress()) -> dict:
            # the file fields are emptied: what they named is no longer shown
            return {**self.on_open(members[evt.index], m, c, mb, progress), self.upload: None, self.gt_upload: None}
        return on_pick

    def on_upload(self, paths: list[str] | None, m: str, c: bool, mb: str | None) -> dict:
        s = Session()
        if paths:
            s.load(paths if len(paths) > 1 else paths[0])
        return {**self.view(s, _models(m, c, mb)), **self.controls(s)}

    def on_view(self, s: Session | None, ax: str, idx: float, win: str, lv: float, wd: float, m, c, mb,
                progress=gr.Progress()) -> dict:
        if s is None or s.scan is None:
            return self.view(Session(), [])
        s.set_view(AXES[ax], int(idx), (float(lv), float(wd)) if win == CUSTOM else win)
        return {**self.view(s, _models(m, c, mb), predict=True, progress=progress),
                self.custom_box: gr.update(visible=win == CUSTOM)}

    def on_gt(self, s: Session | None, path: str | None, m, c, mb) -> dict:
        if s is None or s.rgb is None:
            raise MedsamError("Load an image before its ground-truth mask.")
        s.set_gt(path, Path(path).name if path else None)
        s.example = None  # the mask no longer is the example's
        return self.view(s, _models(m, c, mb))

    def on_click(self, s: Session | None, mode: str, m, c, mb, evt: gr.SelectData, progress=gr.Progress()) -> dict:
        if s is None or s.rgb is None:
            raise MedsamError("Load an image first, then click on it.")
        x, y = evt.index
        s.click(float(x), float(y), mode)
        return self.view(s, _models(m, c, mb), predict=True, progress=progress)

    def on_edit(self, s: Session | None, m, c, mb, action: str | None = None, progress=gr.Progress()) -> dict:
        if s is None or s.rgb is None:
            return self.view(Session(), [])
        if action:
            getattr(s, action)()
        return self.view(s, _models(m, c, mb), predict=True, progress=progress)

    def on_model(self, s: Session | None, m, c, mb, progress=gr.Progress()) -> dict:
        mode = gr.update(value=MODES[2]) if REGISTRY[m].prompts == "box" else gr.skip()
        return {**self.on_edit(s, m, c, mb, progress=progress), self.model_info: long_note(m), self.mode: mode}

    def on_choose(self, s: Session | None, m, c, mb, evt: gr.SelectData) -> dict:
        if s is None or s.rgb is None:
            return self.view(Session(), [])
        s.choose(evt.index)
        return self.view(s, _models(m, c, mb))

    def on_propagate(self, s: Session | None, name: str, m, c, mb, progress=gr.Progress()) -> dict:
        if s is None or s.rgb is None:
            raise MedsamError("Load a volume first.")
        if s.objects and s.objects.current and name.strip():
            s.objects.objects[s.objects.current].name = name.strip()  # the field renames the current object
        elif name.strip():
            s.new_object(name)
        note = s.propagate(m, progress=lambda f, what: progress(f, desc=f"Propagating: {what}"))
        out = self.view(s, _models(m, c, mb))
        return {**out, self.status: f"{out[self.status]}  \n{note}"}

    def on_new_object(self, s: Session | None, name: str, m, c, mb) -> dict:
        if s is None or s.rgb is None:
            raise MedsamError("Load a volume first.")
        s.clear()
        s.new_object(None if s.objects and name.strip() in {o.name for o in s.objects.objects.values()} else name)
        return self.view(s, _models(m, c, mb))

    def on_export(self, s: Session | None, m, c, mb) -> dict:
        if s is None or s.rgb is None:
            raise MedsamError("Load an image and add a prompt first.")
        files = [str(p) for p in s.export()]
        what = "Masks exported (one per model)" if len(s.runs) > 1 else "Mask exported"
        return {self.files: files, self.status: f"{status_text(s, _models(m, c, mb))}  \n{what}: use the "
                                                f"download links below."}

    def on_everything(self, s: Session | None, m, c, mb, progress=gr.Progress()) -> dict:
        if s is None or s.rgb is None:
            raise MedsamError("Load an image first.")
        labels, note = everything(m, s.rgb, progress=lambda f: progress(f, desc="Prompting a point grid"))
        return {self.auto_view: gr.update(value=picture(visualize.label_colors(labels, s.rgb)), visible=True),
                self.status: f"{status_text(s, _models(m, c, mb))}  \n{note}"}

    def on_head(self, s: Session | None, label: str | None, m, c, mb) -> dict:
        if s is None or s.rgb is None:
            raise MedsamError("Load an image first.")
        if not self.found_heads:
            raise MedsamError(f"No prompt-free head is saved on this machine: {HEADS_HOWTO}")
        if not label:
            raise MedsamError("Choose a head first: each one segments the classes of the dataset it was trained on.")
        modality = s.example.modality if s.example else None
        labels, note = segment_with_head(self.found_heads[label], s.rgb, s.gt, modality)
        return {self.head_view: gr.update(value=picture(visualize.label_colors(labels, s.rgb)), visible=True),
                self.status: f"{status_text(s, _models(m, c, mb))}  \n{note}"}

    # --- wiring ---------------------------------------------------------------------------------
    def _on(self, triggers: list[Callable], fn: Callable, inputs: list, outputs: list,
            trigger_mode: str = "multiple") -> None:
        """Bind ``fn`` (wrapped by ``plain_errors``) to each trigger; the status line is always an output.
        Every trigger is queued (``multiple``; Gradio's default drops a click made while the previous
        one is running), and the shared queue runs them in order. Progress shows on the status line
        only: an overlay on the image would swallow the clicks made while an event runs (the second
        corner of a box, a click after typing a slice number)."""
        outputs = list(dict.fromkeys([*outputs, self.status]))
        for trigger in triggers:
            trigger(plain_errors(fn, self.status), inputs, outputs, trigger_mode=trigger_mode,
                    show_progress_on=[self.status], **PRIVATE, **MODEL_WORK)

    def wire(self, demo: gr.Blocks) -> None:
        view, controls, models, s = self.view_out, self.controls_out, self.model_in, self.session
        if self.examples:
            self._on([demo.load], functools.partial(self.on_open, 0), models, [*view, *controls])
            for gallery, members in self.galleries:
                self._on([gallery.select], self.picker(members), models,
                         [*view, *controls, self.upload, self.gt_upload])
        self._on([self.upload.upload], self.on_upload, [self.upload, *models], [*view, *controls])
        view_in = [s, self.axis, self.index, self.window, self.level, self.width, *models]
        # a slice or window change draws the latest choice only: dragging the slider fires many
        self._on([self.axis.input, self.index.input, self.index.release, self.window.input, self.level.submit,
                  self.width.submit], self.on_view, view_in, [*view, self.custom_box], trigger_mode="always_last")
        # upload/clear, not change: opening an example empties this field without dropping its mask
        self._on([self.gt_upload.upload, self.gt_upload.clear], self.on_gt, [s, self.gt_upload, *models], view)
        self._on([self.canvas.select, self.canvas_b.select], self.on_click, [s, self.mode, *models], view)
        self._on([self.undo.click], functools.partial(self.on_edit, action="undo"), [s, *models], view)
        self._on([self.clear.click], functools.partial(self.on_edit, action="clear"), [s, *models], view)
        self._on([self.candidates.select], self.on_choose, [s, *models], view)
        self.compare.change(lambda c: (gr.update(visible=c), gr.update(visible=c)), self.compare,
                            [self.model_b, self.canvas_b], **PRIVATE)
        self._on([self.model.input], self.on_model, [s, *models], [*view, self.model_info, self.mode])
        self._on([self.compare.input, self.model_b.input], self.on_edit, [s, *models], view)
        self._on([self.export.click], self.on_export, [s, *models], [self.files])
        self._on([self.propagate.click], self.on_propagate, [s, self.object_name, *models], view)
        self._on([self.new_object.click], self.on_new_object, [s, self.object_name, *models], view)
        self._on([self.everything.click], self.on_everything, [s, *models], [self.auto_view])
        self._on([self.head_button.click], self.on_head, [s, self.head, *models], [self.head_view])
