"""Named HTTP endpoints for ``gradio_client`` and plain HTTP, on hidden components."""

from __future__ import annotations

import logging

import gradio as gr

from ..errors import MedsamError
from ..predictor import list_models
from ..service import segment_files
from .common import MODEL_WORK, SERVER_ERROR

log = logging.getLogger(__name__)


def segment(image_path: str, prompt_json: str, model_name: str, gt_path: str | None) -> tuple[str, dict]:
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


def build_api() -> None:
    """``/segment`` and ``/models``; call inside the app's Blocks."""
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
    button.click(segment, [image, prompts, model, ground_truth], [mask, info], api_name="segment", **MODEL_WORK)
    models_button.click(list_models, None, models, api_name="models")
