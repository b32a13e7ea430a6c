"""One model's speed and memory on this CPU, on every backend, eager PyTorch measured in the same run.

    python -m bench.perf --model sam_vit_h --random-weights [--repeat 2] [--out results/perf.json]
    python -m bench.perf --model all --random-weights

``bench.perf --model`` runs this module in a child process per model, with ``MEDSAM_CHECKPOINTS`` and
``MEDSAM_CACHE`` set to empty temporary folders, so that the export, OpenVINO's compilation and every
encode are measured from scratch,
and stores its figures under ``models.<name>`` of the output JSON (other keys kept). Random weights
(seeded) need no checkpoint; timing does not depend on the weights. Figures:

- ``export``: seconds to export the encoder and decoder to ONNX, peak RSS so far, and the files' MB;
- per variant (``torch``, ``onnxruntime``, ``openvino``, ``openvino-bf16``): ``prepare_s`` (graph
  compilation or session creation), ``encoder_ms`` (median of ``--repeat`` encodes of the
  preprocessed bundled example; eager without a warm-up call), ``set_image_ms`` (default backend
  only: what a click waits for on a new image: preprocessing, cache key and encode), ``decoder_ms``
  (one box prompt, median of 20, upscaling to the image included), ``rss_mb`` after preparing it
  (variants run in the order above, each freed before the next; ``rss_after_load_mb`` is the
  default backend's, prepared first);
- ``agreement`` of each exported variant with eager f32 on the parity prompts: the mean and least
  IoU of the masks (two empty masks agree), and the embeddings' largest difference relative to
  their largest magnitude;
- ``floor``: the encoder's and decoder's floating-point operations (torch's counter, on the meta
  device) over this CPU's matrix-product peak measured now (f32 and bf16), and each variant's time
  over its floor;
- ``app_rss_mb``: in a fresh process, as the app holds the model (graphs already exported, the torch
  encoder freed, one image encoded), alone and with LiteMedSAM loaded too (``--rss-only``).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch

from medsam import backends
from medsam.decoding import Prompt
from medsam.gallery import bundled_examples
from medsam.imaging import load_rgb
from medsam.models import build_model, get_spec
from medsam.predictor import EmbeddingCache, Predictor, load_model

VARIANTS = {"openvino": ("openvino", "f32"), "torch": ("torch", "f32"), "onnxruntime": ("onnxruntime", "f32"),
            "openvino-bf16": ("openvino", "bf16")}  # the default backend first: its RSS is "after load"


def median_ms(fn: Callable[[], object], repeat: int, warm: bool = True) -> float:
    if warm:
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return round(float(np.median(times)), 1)


def matmul_gflops(dtype: torch.dtype, sizes: tuple[int, ...] = (1024, 2048, 3072), repeat: int = 10) -> float:
    """This CPU's practical peak: the best rate of large square matrix products with torch's threads
    (best of ``repeat`` at each size, so that a busy moment does not lower the peak)."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b
        for _ in range(repeat):
            start = time.perf_counter()
            a @ b
            best = max(best, 2 * n ** 3 / (time.perf_counter() - start) / 1e9)
    return round(best, 1)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def parity_prompts(h: int, w: int) -> list[list[Prompt]]:
    """One group per prompt structure the predictor sends: points, box, both, mask input, 1 mask."""
    rng = np.random.default_rng(0)
    pts = lambda n: rng.uniform([0, 0], [w - 1, h - 1], (n, 2))  # noqa: E731
    box = np.array([w * 0.2, h * 0.25, w * 0.7, h * 0.8])
    logits = rng.normal(0, 3, (256, 256)).astype(np.float32)
    groups = [[Prompt(pts(1), np.ones(1)) for _ in range(3)],
              [Prompt(box=box + i) for i in range(4)],
              [Prompt(pts(3), np.array([1.0, 0.0, 1.0]), box, multimask=False)],
              [Prompt(pts(2), np.array([1.0, 0.0]), mask_input=logits, multimask=False) for _ in range(2)]]
    return [[p.checked(h, w) for p in g] for g in groups]


def masks_for(pred: Predictor, rgb: np.ndarray) -> tuple[torch.Tensor, list[np.ndarray]]:
    emb = pred.set_image(rgb)
    groups = parity_prompts(*rgb.shape[:2])
    return emb.features, [m for g in groups for r in pred.predict_batch(g, emb) for m in r.masks]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def gflop(model: torch.nn.Module, input_size: int) -> dict:
    """Operations per encode and per one-box decode, counted with the model moved to the meta device
    (nothing is computed; the model is unusable afterwards)."""
    from torch.utils.flop_counter import FlopCounterMode

    from medsam.backends import DecoderGraph

    model = model.eval().to("meta")
    meta = partial(torch.zeros, device="meta")
    dec = (meta(1, 256, 64, 64), torch.tensor([[[10.0, 10.0], [100.0, 120.0]]], device="meta"),
           torch.tensor([[2.0, 3.0]], device="meta"), meta(1, 1, 256, 256), meta(1))
    out = {}
    parts = (("encoder", lambda: model.image_encoder(meta(1, 3, input_size, input_size))),
             ("decoder", lambda: DecoderGraph(model)(*dec)))
    for part, fn in parts:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            fn()
        out[part] = round(counter.get_total_flops() / 1e9, 2)
    return out


def measure_variant(spec, model: torch.nn.Module, variant: str, rgb: np.ndarray, box: list[int],
                    repeat: int) -> tuple[dict, Predictor]:
    backend, precision = VARIANTS[variant]
    start = time.perf_counter()
    pred = Predictor(spec, model, cache=EmbeddingCache(0), backend=backend, precision=precision)
    out = {"prepare_s": round(time.perf_counter() - start, 1), "rss_mb": rss_mb()}
    x = spec.preprocessing.image(rgb)[0]
    out["encoder_ms"] = median_ms(partial(pred.engine.encode, x), repeat, warm=variant != "torch")
    if variant == next(iter(VARIANTS)):  # the path users pay for, on the default backend
        out["set_image_ms"] = median_ms(partial(pred.set_image, rgb), repeat, warm=False)
    emb = pred.set_image(rgb)
    one = [Prompt(box=np.array(box, float)).checked(*rgb.shape[:2])]
    out["decoder_ms"] = median_ms(partial(pred.predict_batch, one, emb), 20)
    return out, pred


def measure(name: str, random_weights: bool, repeat: int) -> dict:
    spec = get_spec(name)
    torch.set_num_threads(backends.default_threads())
    example = bundled_examples()[0]
    rgb, box = load_rgb(example.image), list(example.box)
    torch.manual_seed(0)
    model = spec.build().eval() if random_weights else build_model(spec)
    fig: dict = {"weights": "random (seeded)" if random_weights else "checkpoint", "input_size": spec.input_size,
                 "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
                 "rss_model_mb": rss_mb(), "image": example.image.name, "repeat": repeat}
    start = time.perf_counter()
    enc, dec = backends.export_graphs(model, spec.input_size)
    files = [f for folder in (enc.parent, dec.parent) for f in folder.iterdir()]
    fig["export"] = {"seconds": round(time.perf_counter() - start, 1), "peak_rss_mb": peak_rss_mb(),
                     "disk_mb": round(sum(f.stat().st_size for f in files) / 2**20, 1),
                     "encoder_files": len(list(enc.parent.iterdir()))}
    print(f"{name} export: {fig['export']}", flush=True)
    variants, reference = {}, None
    for variant in VARIANTS:
        variants[variant], pred = measure_variant(spec, model, variant, rgb, box, repeat)
        features, masks = masks_for(pred, rgb)
        if variant == "torch":
            reference = (features, masks)
        else:
            variants[variant]["_outputs"] = (features, masks)
        if variant == "openvino":
            fig["rss_after_load_mb"] = variants[variant]["rss_mb"]
        del pred
        gc.collect()
        print(f"{name} {variant}: {json.dumps({k: v for k, v in variants[variant].items() if k[0] != '_'})}",
              flush=True)
    fig["agreement"] = agreement(variants, reference)
    fig["variants"] = variants
    fig["floor"] = floor(gflop(model, spec.input_size), variants)
    fig["app_rss_mb"] = app_rss(name, random_weights)
    return fig


def app_rss(name: str, random_weights: bool) -> dict:
    """``--rss-only`` in a child process (the same export folder, so nothing is exported again)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "bench.model_perf", name, "--rss-only", "--json", f"{tmp}/rss.json"]
        subprocess.run(cmd + (["--random-weights"] if random_weights else []), check=True)
        return json.loads(Path(f"{tmp}/rss.json").read_text())


def rss_as_the_app_holds_it(name: str, random_weights: bool) -> dict:
    spec = get_spec(name)
    torch.manual_seed(0)
    pred = Predictor(spec, spec.build().eval() if random_weights else build_model(spec))
    pred.release_torch_encoder()
    gc.collect()
    rgb = load_rgb(bundled_examples()[0].image)
    pred.set_image(rgb)
    alone = rss_mb()
    load_model("litemedsam").set_image(rgb)
    return {"model": alone, "with_litemedsam": rss_mb(), "backend": pred.backend}


def agreement(variants: dict, reference: tuple[torch.Tensor, list[np.ndarray]]) -> dict:
    """Each exported variant's masks and embedding against eager f32's (removes their outputs)."""
    out = {}
    scale = float(reference[0].abs().max())
    for variant, figures in variants.items():
        if "_outputs" in figures:
            features, masks = figures.pop("_outputs")
            ious = [iou(a, b) for a, b in zip(masks, reference[1])]
            diff = float((features - reference[0]).abs().max()) / scale
            out[variant] = {"mask_iou_mean": round(float(np.mean(ious)), 4), "masks": len(ious),
                            "mask_iou_min": round(float(np.min(ious)), 4),
                            "embedding_max_rel_diff": float(f"{diff:.3g}")}
    return out


def floor(ops: dict, variants: dict) -> dict:
    peak = {"f32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
    floor_ms = {p: {part: round(ops[part] / g * 1e3, 1) for part in ops} for p, g in peak.items()}
    eager = variants["torch"]["encoder_ms"]
    ratios = {v: {"encoder_vs_floor": round(f["encoder_ms"] / floor_ms[VARIANTS[v][1]]["encoder"], 2),
                  "speedup_vs_eager": round(eager / f["encoder_ms"], 2)} for v, f in variants.items()}
    return {"gflop": ops, "matmul_peak_gflops": peak, "floor_ms": floor_ms, "ratios": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description="one model's figures (run by python -m bench.perf --model)")
    parser.add_argument("model")
    parser.add_argument("--random-weights", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, required=True, help="where to write this model's figures")
    parser.add_argument("--rss-only", action="store_true", help="only the memory the app holds (app_rss_mb)")
    args = parser.parse_args()
    if args.rss_only:
        fig = rss_as_the_app_holds_it(args.model, args.random_weights)
    else:
        fig = measure(args.model, args.random_weights, args.repeat)
    args.json.write_text(json.dumps(fig, indent=2) + "\n")


if __name__ == "__main__":
    main()
