"""The Gradio app: one module per tab plus the API endpoints; the work is done by ``medsam.service``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from ..gallery import all_examples
from ..paths import REPO
from ..settings import settings
from .about_tab import about, performance
from .api import build_api
from .dashboard_tab import build_dashboard_tab
from .learn_tab import LearnTab
from .segment_tab import SegmentTab, default_models

__all__ = ["build", "default_models", "launch_kwargs", "queue_kwargs"]
RESULTS = REPO / "results"
INTRO = """# medsam: Segment Anything on medical images
Pick an example or load an image, choose **Box** and click two opposite corners, or click on an object;
add positive/negative clicks to refine. Candidate masks, timings and, with a ground-truth mask, DICE are shown."""
CACHE_CLEANUP = (900, 3600)
"""Every 15 minutes, delete uploads and served outputs older than an hour (Blocks ``delete_cache``)."""


def build(data: Path | None = None) -> gr.Blocks:
    """The whole app: Segment, Learn, Dashboard and About tabs plus the named API endpoints; ``data`` adds
    a benchmark folder's examples beside the bundled ones."""
    with gr.Blocks(title="medsam", analytics_enabled=False, delete_cache=CACHE_CLEANUP) as demo:
        gr.Markdown(INTRO)
        examples = all_examples(data)
        with gr.Tabs() as tabs:
            with gr.Tab("Segment", id="segment"):
                segment = SegmentTab(examples)
            with gr.Tab("Learn", id="learn"):
                learn = LearnTab(examples)
            with gr.Tab("Dashboard", id="dashboard"):
                build_dashboard_tab(RESULTS)
            with gr.Tab("About", id="about"):
                gr.Markdown(about() + performance(RESULTS / "perf.json"), elem_id="about")
        segment.wire(demo)
        learn.wire(demo, tabs, segment.session)
        build_api()
    return demo


def queue_kwargs() -> dict[str, Any]:
    """Queue settings for a 2-core CPU host: at most one run of each event at a time, and every event
    that runs a model in one shared queue (``common.MODEL_WORK``); at most 64 waiting, more are refused
    with "queue is full" rather than piling up."""
    return {"default_concurrency_limit": 1, "max_size": 64}


def launch_kwargs() -> dict[str, Any]:
    """Launch settings: uploads up to MEDSAM_MAX_UPLOAD_MB (default 200) megabytes; errors are our own plain
    sentences, never Gradio's tracebacks; the layout's few CSS rules (``style.css``)."""
    return {"max_file_size": f"{settings().max_upload_mb}mb", "show_error": False,
            "css_paths": [Path(__file__).with_name("style.css")]}
