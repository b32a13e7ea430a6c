"""The one-box decoder: OpenVINO's graph compiled for one box's shapes against the dynamic-shape graph.

    python -m bench.decoder_shapes [--models litemedsam,mobilesam,sam_vit_b] [--out results/perf.json]

For each model (seeded random weights; timing does not depend on them) on OpenVINO f32: the time per
box prompt through ``Predictor.predict_batch`` (decoder and upscaling to the bundled AMOS slice, 512
px), median of 30, with the static one-box decoder (``backends.BOX_PROMPT``) and, in the same process,
with the dynamic graph; then the static one again (the order should not matter). Written to
``decoder_shapes`` in the output JSON (other keys kept).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from bench.model_perf import median_ms
from medsam.decoding import Prompt
from medsam.gallery import bundled_examples
from medsam.imaging import load_rgb
from medsam.models import get_spec
from medsam.paths import REPO, command_line
from medsam.predictor import EmbeddingCache, Predictor
from medsam.results import git_commit


def measure(name: str, rgb: np.ndarray, box: list[int]) -> dict:
    spec = get_spec(name)
    torch.manual_seed(0)
    pred = Predictor(spec, spec.build().eval(), cache=EmbeddingCache(0), backend="openvino")
    emb = pred.set_image(rgb)
    one = [Prompt(box=np.array(box, float)).checked(*rgb.shape[:2])]
    run = partial(pred.predict_batch, one, emb)
    engine = pred.engine
    static = median_ms(run, 30)
    engine._decoder_for = lambda inputs: engine._decoder  # the dynamic graph for every prompt
    dynamic = median_ms(run, 30)
    del engine._decoder_for
    return {"static_ms": static, "dynamic_ms": dynamic, "static_again_ms": median_ms(run, 30)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="litemedsam,mobilesam,sam_vit_b")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "perf.json")
    args = parser.parse_args()
    example = bundled_examples()[0]
    rgb, box = load_rgb(example.image), list(example.box)
    fig: dict = {"command": command_line(["python", "-m", "bench.decoder_shapes"], sys.argv[1:]),
                 "git_commit": git_commit(REPO / "results"), "date": time.strftime("%Y-%m-%d"), "models": {}}
    for name in args.models.split(","):
        fig["models"][name] = measure(name, rgb, box)
        print(name, fig["models"][name], flush=True)
    old = json.loads(args.out.read_text()) if args.out.is_file() else {}
    args.out.write_text(json.dumps(old | {"decoder_shapes": fig}, indent=2) + "\n")


if __name__ == "__main__":
    main()
