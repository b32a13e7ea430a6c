"""Segment-tab rendering: pictures are cached once and atomically; the hidden canvas is not drawn."""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from medsam.session import MODES, Session
from medsam.ui.common import picture as _picture
from medsam.ui.segment_tab import SegmentTab

BOX = MODES[2]


@pytest.fixture(scope="module")
def tab() -> SegmentTab:
    with gr.Blocks():
        return SegmentTab([])


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


def test_second_canvas_is_drawn_only_when_compared(tab: SegmentTab, phantom_files) -> None:
    s = Session()
    s.load(phantom_files[0])
    views = tab.view(s, ["litemedsam"]), tab.view(s, ["litemedsam", "litemedsam_ft"])
    one, two = ([v[tab.canvas], v[tab.canvas_b]] for v in views)
    assert Path(one[0]).is_file() and one[1] == gr.skip()
    assert all(Path(c).is_file() for c in two)


def test_candidates_are_cached_pictures(tab: SegmentTab, phantom_files) -> None:
    image, _, box = phantom_files
    s = Session()
    s.load(image)
    s.click(box[0], box[1], BOX)
    s.click(box[2], box[3], BOX)
    s.predict(["litemedsam"])
    gallery = tab.view(s, ["litemedsam"])[tab.candidates]
    assert len(gallery) == 3 and all(Path(p).is_file() and caption.startswith(f"#{k}")
                                     for k, (p, caption) in enumerate(gallery, 1))


def test_a_step_without_progress_of_its_own_fills_the_bar_with_its_expected_time() -> None:
    import time

    from medsam.ui.common import TimedProgress

    calls: list[tuple[float, str]] = []
    with TimedProgress(lambda f, desc: calls.append((f, desc)), tick_s=0.02) as notify:
        notify("Loading", 0.2)
        time.sleep(0.5)  # runs longer than expected
        notify("Encoding", None)  # not measured: the bar shows the text and stays put
        after = len(calls)
        time.sleep(0.1)
        assert len(calls) == after and calls[-1] == (0, "Encoding")
        notify("Encoding", 10.0)
    done = len(calls)
    time.sleep(0.1)
    assert len(calls) == done, "the bar stops with the event"
    loading = [f for f, desc in calls if desc == "Loading"]
    assert loading[0] == 0 and loading == sorted(loading) and loading[-1] == 0.95
    assert any(0.2 < f < 0.9 for f in loading), loading
