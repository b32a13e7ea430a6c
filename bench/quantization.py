"""int8 post-training quantization of LiteMedSAM for OpenVINO: speed and mask agreement, next to bf16.

An experiment, not a backend (it needs ``pip install nncf``):

    python -m bench.quantization --data ../shared/datasets [--calibration 40] [--per-modality 3]

NNCF quantizes the exported encoder and decoder graphs (transformer preset, mixed symmetric/asymmetric)
on training-split images: encoder inputs, and decoder inputs for a box, one interior click and both.
Each variant is then compared with eager PyTorch the way ``tests/test_backends.py`` checks backends:
mean DICE between the top masks for a box and for three interior points on test-split images
(issue 7 asks for >= 0.99), with encoder and decoder latency measured alongside. Writes
``results/quantization.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from bench.perf import median_ms, predictor
from medsam import backends
from medsam.backends import export_graphs, prompt_arrays
from medsam.imaging import load_mask, load_rgb
from medsam.metrics import dice
from medsam.paths import REPO, command_line
from medsam.predictor import Predictor, Prompt
from medsam.results import git_commit
from medsam.settings import settings

# variant -> (encoder, decoder) precision; "int8" is an NNCF-quantized graph run in f32 otherwise
VARIANTS = {"f32": ("f32", "f32"), "bf16": ("bf16", "bf16"), "bf16 encoder": ("bf16", "f32"),
            "int8 encoder": ("int8", "f32"), "int8 decoder": ("f32", "int8"), "int8": ("int8", "int8")}


def prompts(gt: np.ndarray) -> dict[str, dict]:
    """The parity test's prompts: the mask's box, and three points spread over its pixels."""
    ys, xs = np.nonzero(gt)
    inside = np.stack([xs, ys], 1)[np.linspace(0, len(xs) - 1, 3).astype(int)]
    return {"box": dict(box=[xs.min(), ys.min(), xs.max(), ys.max()]), "points": dict(points=inside, labels=[1, 1, 1])}


def quantize(data: Path, pairs: pd.DataFrame, pred: Predictor) -> dict[str, object]:
    """NNCF-quantized encoder and decoder (OpenVINO models) calibrated on ``pairs``."""
    import nncf
    import openvino as ov

    enc_inputs, dec_inputs = [], []
    for _, row in pairs.iterrows():
        rgb, gt = load_rgb(data / row["image"]), load_mask(data / row["mask"]) > 0
        x, _ = pred.spec.preprocessing.image(rgb)
        enc_inputs.append({"image": x.numpy()})
        emb = pred.set_image(rgb)
        given = prompts(gt)
        box, click = given["box"]["box"], given["points"]["points"][1:2]
        for p in (Prompt.make(box=box), Prompt.make(points=click, labels=[1]),
                  Prompt.make(points=click, labels=[1], box=box)):
            arrays = prompt_arrays([p.checked(*emb.geometry.original)], emb.geometry.scale)
            dec_inputs.append({"image_embeddings": emb.features.numpy(), **arrays})
    enc, dec = export_graphs(pred.model, pred.spec.input_size)
    core = ov.Core()
    return {part: nncf.quantize(core.read_model(str(path)), nncf.Dataset(inputs), subset_size=len(inputs),
                                model_type=nncf.ModelType.TRANSFORMER, preset=nncf.QuantizationPreset.MIXED)
            for part, path, inputs in (("encoder", enc, enc_inputs), ("decoder", dec, dec_inputs))}


def variant_predictor(variant: str, quantized: dict[str, object]) -> Predictor:
    """An OpenVINO predictor whose encoder and decoder run in the variant's precisions."""
    import openvino as ov

    pred = predictor("openvino")
    enc, dec = export_graphs(pred.model, pred.spec.input_size)
    core = ov.Core()
    for part, path, precision in (("encoder", enc, VARIANTS[variant][0]), ("decoder", dec, VARIANTS[variant][1])):
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": backends.default_threads(),
                  "INFERENCE_PRECISION_HINT": "f32" if precision == "int8" else precision}
        model = quantized[part] if precision == "int8" else str(path)
        setattr(pred.engine, f"_{part}", core.compile_model(model, "CPU", config).create_infer_request())
    return pred


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=settings().data)
    parser.add_argument("--calibration", type=int, default=40, help="training-split pairs for calibration")
    parser.add_argument("--per-modality", type=int, default=3, help="test-split pairs per modality to compare on")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "quantization.json")
    args = parser.parse_args()
    if args.data is None:
        parser.error("give --data (the benchmark folder) or set MEDSAM_DATA")
    try:
        import nncf  # noqa: F401
    except ImportError:
        sys.exit("This experiment needs NNCF: pip install nncf")
    manifest = pd.read_csv(args.data / "manifest.csv")
    calibration = manifest[manifest["split"] == "train"].sample(args.calibration, random_state=0)
    test = manifest[manifest["split"] == "test"].groupby("modality").head(args.per_modality)
    eager = predictor("torch")
    start = time.perf_counter()
    quantized = quantize(args.data, calibration, variant_predictor("f32", {}))
    report: dict = {"command": command_line(["python", "-m", "bench.quantization"], sys.argv[1:]),
                    "git_commit": git_commit(REPO / "results"), "calibration_pairs": args.calibration,
                    "quantize_s": round(time.perf_counter() - start, 1), "test_pairs": len(test), "variants": {}}
    cases = [(load_rgb(args.data / r["image"]), load_mask(args.data / r["mask"]) > 0) for _, r in test.iterrows()]
    reference = []
    for rgb, gt in cases:
        emb = eager.set_image(rgb)
        reference.append({k: eager.predict(embedding=emb, **p).masks[0] for k, p in prompts(gt).items()})
    for variant in VARIANTS:
        pred = variant_predictor(variant, quantized)
        agree: dict[str, list[float]] = {"box": [], "points": []}
        for (rgb, gt), ref in zip(cases, reference):
            emb = pred.set_image(rgb)
            for kind, p in prompts(gt).items():
                mask = pred.predict(embedding=emb, **p).masks[0]
                agree[kind].append(dice(ref[kind], mask) if ref[kind].any() or mask.any() else 1.0)
        x = pred.spec.preprocessing.image(cases[0][0])[0]
        emb = pred.set_image(cases[0][0])
        box = [Prompt.make(**prompts(cases[0][1])["box"]).checked(*emb.geometry.original)]
        report["variants"][variant] = {
            "encoder_ms": median_ms(partial(pred.engine.encode, x), 10),
            "decoder_ms": median_ms(partial(pred.predict_batch, box, emb), 20),
            "agreement_with_eager": {k: round(float(np.mean(v)), 4) for k, v in agree.items()},
            "worst_pair": {k: round(float(np.min(v)), 4) for k, v in agree.items()}}
        print(variant, json.dumps(report["variants"][variant]), flush=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
