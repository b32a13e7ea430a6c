"""Named HTTP endpoints for ``gradio_client`` and plain HTTP, on hidden components."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import gradio as gr

from ..errors import MedsamError
from ..predictor import list_models
from ..service import everything_files, segment_files
from .common import MODEL_WORK, SERVER_ERROR

log = logging.getLogger(__name__)


def _answer(work: Callable[[], tuple[Path, dict]], name: str) -> tuple[str, dict]:
    """An endpoint's file and numbers; bad input becomes its plain sentence, a bug a logged generic one."""
    try:
        path, numbers = work()
    except MedsamError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    except Exception:  # noqa: BLE001 - a bug: log it, answer with a plain sentence
        log.exception("%s failed", name)
        raise gr.Error(SERVER_ERROR, print_exception=False) from None
    return str(path), numbers


def segment(image_path: str, prompt_json: str, model_name: str, gt_path: str | None) -> tuple[str, dict]:
    """Segment one image from JSON prompts; returns the mask PNG and a JSON of numbers."""
    if not image_path:
        raise gr.Error("Give an image file.")
    return _answer(lambda: segment_files(image_path, prompt_json or "{}", model_name or "litemedsam", gt_path),
                   "segment")


def everything(image_path: str, model_name: str) -> tuple[str, dict]:
    """Everything mode (16x16 grid) on one image; returns the label-map PNG and a JSON of numbers."""
    if not image_path:
        raise gr.Error("Give an image file.")
    return _answer(lambda: everything_files(image_path, model_name or "litemedsam"), "everything")


def build_api() -> None:
    """``/segment``, ``/everything`` and ``/models``; call inside the app's Blocks."""
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
        auto_image = gr.File(label="image", type="filepath")
        auto_model = gr.Textbox(value="litemedsam", label="model")
        label_map = gr.File(label="label_map")
        auto_info = gr.JSON(label="info")
        auto_button = gr.Button()
    button.click(segment, [image, prompts, model, ground_truth], [mask, info], api_name="segment", **MODEL_WORK)
    auto_button.click(everything, [auto_image, auto_model], [label_map, auto_info], api_name="everything", **MODEL_WORK)
    models_button.click(list_models, None, models, api_name="models")
