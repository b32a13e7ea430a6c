"""Segment-tab rendering: pictures are cached once and atomically; the hidden canvas is not drawn."""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from medsam.service import MODES, Session
from medsam.ui import _picture, _view

BOX = MODES[2]


def test_picture_is_written_once(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    rgb = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    first = Path(_picture(rgb))
    os.utime(first, ns=(0, 0))  # any rewrite would set the time to now
    second = Path(_picture(rgb.copy()))
    assert first == second and first.is_relative_to(tmp_path)
    assert os.stat(second).st_mtime_ns == 0, "an existing picture was rewritten"
    assert Image.open(first).size == (60, 40)
    assert [p.name for p in first.parent.iterdir()] == [first.name], "no staging file may be left behind"
    assert _picture(rgb[::-1].copy()) != str(first)
    # Gradio serves a picture already in its cache as it is, without saving it again
    assert gr.Image(type="numpy").move_resource_to_block_cache(str(first)) == str(first)


def test_second_canvas_is_drawn_only_when_compared(phantom_files) -> None:
    s = Session()
    s.load(phantom_files[0])
    one, two = _view(s, ["litemedsam"])[:2], _view(s, ["litemedsam", "litemedsam_ft"])[:2]
    assert Path(one[0]).is_file() and one[1] == gr.skip()
    assert all(Path(c).is_file() for c in two)


def test_candidates_are_cached_pictures(phantom_files) -> None:
    image, _, box = phantom_files
    s = Session()
    s.load(image)
    s.click(box[0], box[1], BOX)
    s.click(box[2], box[3], BOX)
    s.predict(["litemedsam"])
    gallery = _view(s, ["litemedsam"])[2]
    assert len(gallery) == 3 and all(Path(p).is_file() and caption.startswith(f"#{k}")
                                     for k, (p, caption) in enumerate(gallery, 1))
