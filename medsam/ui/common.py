"""What every tab shares: plain-sentence error handling for event handlers and cached pictures."""

from __future__ import annotations

import contextvars
import functools
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from gradio import processing_utils
from PIL import Image as PILImage

from ..errors import MedsamError

log = logging.getLogger(__name__)
SERVER_ERROR = "Something went wrong on the server; the details were logged. Please try again."
PRIVATE = {"api_visibility": "private"}
MODEL_WORK = {"concurrency_id": "model-work", "concurrency_limit": 1}
"""Events that run models share one queue, one at a time: each already uses every core, and one
browser tab's events then finish in the order they were made (a slow box cannot land after a
later Clear)."""


def plain_errors(fn: Callable[..., dict], status: gr.components.Component) -> Callable[..., dict]:
    """Wrap a handler that returns {component: value}: an error becomes a warning toast and an
    "**Error:**" line in ``status`` (other outputs unchanged); never a traceback, never a dead server."""
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> dict:
        try:
            return fn(*args, **kwargs)
        except MedsamError as exc:
            message = str(exc)
        except Exception:  # noqa: BLE001 - anything else is a bug: log it, keep serving
            log.exception("handler %s failed", getattr(fn, "__name__", fn))
            message = SERVER_ERROR
        gr.Warning(message)
        return {status: f"**Error:** {message}"}
    return run


def picture(rgb: np.ndarray) -> str:
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


class TimedProgress:
    """A progress bar for steps that report no progress of their own (a model's first load, an
    image encode): called with a step's text and expected seconds (measured figures), it fills with
    the time spent and waits at 95 % if the step runs longer; the next call or ``close`` ends it.
    Use as a context manager around the slow work of one event."""

    def __init__(self, progress: gr.Progress, tick_s: float = 0.5) -> None:
        self.progress, self.tick_s = progress, tick_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, text: str, seconds: float | None = None) -> None:
        self.close()
        self.progress(0, desc=text)
        if seconds:
            self._stop = threading.Event()
            # the bar belongs to this event: Gradio finds it through context variables
            run = contextvars.copy_context().run
            self._thread = threading.Thread(target=run, args=(self._fill, text, seconds, self._stop), daemon=True)
            self._thread.start()

    def _fill(self, text: str, seconds: float, stop: threading.Event) -> None:
        start = time.monotonic()
        while not stop.wait(self.tick_s):
            self.progress(min((time.monotonic() - start) / seconds, 0.95), desc=text)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> TimedProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
