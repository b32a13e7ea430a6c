"""Named HTTP endpoints for ``gradio_client`` and plain HTTP, on hidden components."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

from ..errors import MedsamError
from ..learn import endpoints as learn
from ..predictor import list_models
from ..service import everything_files, segment_files, segment_volume_files
from .common import MODEL_WORK, SERVER_ERROR

log = logging.getLogger(__name__)


def plain(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Errors as one plain sentence (``gr.Error``), never a traceback; bugs are logged."""
    @functools.wraps(fn)
    def run(*args: Any) -> Any:
        if not args or not args[0]:
            raise gr.Error("Give an image file.", print_exception=False)
        try:
            return fn(*args)
        except MedsamError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except Exception:  # noqa: BLE001 - a bug: log it, answer with a plain sentence
            log.exception("%s failed", fn.__name__)
            raise gr.Error(SERVER_ERROR, print_exception=False) from None
    return run


@plain
def segment(image_path: str, prompt_json: str, model_name: str, gt_path: str | None) -> tuple[str, dict]:
    """Segment one image from JSON prompts; returns the mask PNG and a JSON of numbers."""
    png, numbers = segment_files(image_path, prompt_json or "{}", model_name or "litemedsam", gt_path)
    return str(png), numbers


@plain
def everything(image_path: str, model_name: str) -> tuple[str, dict]:
    """Everything mode (16x16 grid) on one image; returns the label-map PNG and a JSON of numbers."""
    png, numbers = everything_files(image_path, model_name or "litemedsam")
    return str(png), numbers


@plain
def prompt_sensitivity(image_path: str, gt_path: str | None, model_name: str, box_json: str, jitter: float,
                       n: float) -> dict:
    """DICE of n jittered copies of a box (the benchmark's box_jitter strategies, seeded)."""
    return learn.prompt_sensitivity(image_path, gt_path, model_name or "litemedsam", box_json or "", jitter, int(n))


@plain
def clicks_to_target(image_path: str, gt_path: str | None, model_name: str, max_clicks: float) -> dict:
    """DICE after each simulated corrective click, and NoC@85/90."""
    return learn.clicks_to_target(image_path, gt_path, model_name or "litemedsam", int(max_clicks))


@plain
def segment_volume(volume_path: str, prompt_json: str, model_name: str, reference_path: str | None,
                   label_values: str) -> tuple[str, dict]:
    """Propagate a prompt on one slice (or prompts on several: key slices) through a volume; returns
    the label NIfTI and numbers."""
    path, numbers = segment_volume_files(volume_path, prompt_json or "{}", model_name or "litemedsam",
                                         reference_path, label_values)
    return str(path), numbers


def build_api() -> None:
    """``/segment``, ``/segment_volume``, ``/everything``, ``/prompt_sensitivity``, ``/clicks_to_target``
    and ``/models``; call inside the app's Blocks."""
    with gr.Column(visible=False):
        image = gr.File(label="image", type="filepath")
        prompts = gr.Textbox(label="prompts")
        model = gr.Textbox(value="litemedsam", label="model")
        ground_truth = gr.File(label="ground_truth", type="filepath")
        box = gr.Textbox(label="box")
        jitter = gr.Number(20, label="jitter")
        n = gr.Number(10, label="n")
        max_clicks = gr.Number(10, label="max_clicks")
        label_values = gr.Textbox(label="label_values")
        mask = gr.File(label="mask")
        info = gr.JSON(label="info")
        models = gr.JSON()
        buttons = [gr.Button() for _ in range(6)]
    buttons[0].click(segment, [image, prompts, model, ground_truth], [mask, info], api_name="segment", **MODEL_WORK)
    buttons[1].click(prompt_sensitivity, [image, ground_truth, model, box, jitter, n], info,
                     api_name="prompt_sensitivity", **MODEL_WORK)
    buttons[2].click(clicks_to_target, [image, ground_truth, model, max_clicks], info, api_name="clicks_to_target",
                     **MODEL_WORK)
    buttons[3].click(list_models, None, models, api_name="models")
    buttons[4].click(segment_volume, [image, prompts, model, ground_truth, label_values], [mask, info],
                     api_name="segment_volume", **MODEL_WORK)
    buttons[5].click(everything, [image, model], [mask, info], api_name="everything", **MODEL_WORK)
