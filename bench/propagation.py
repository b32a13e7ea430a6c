"""Seconds to propagate one prompt through a structure spanning about 100 slices (issue 19's target:
<= 60 s on 2 cores with LiteMedSAM on the default backend).

    python -m bench.propagation [--volumes DIR] [--image brats2015_flair/...] [--object whole_tumor]
        [--axis 1] [--model litemedsam] [--runs 2] [--out results/propagation.json]

The structure is a volume's object of the volumes folder (``manifest.csv``; default the BraTS 2015
FLAIR training volume whose whole tumour spans 106 coronal slices). Each run starts from an empty
embedding cache, boxes the reference on the slice where it is largest and propagates up and down
(``medsam.volume.propagate``, what the app's *Propagate* button runs). The baseline, measured in the
same run on the same slices, is the encoder alone on each slice that propagation kept (render +
encode, no decoding): propagation's overhead over it is decoding, boxes and stop checks. Prints and
records seconds per run, per 100 slices and the ratio, with the command, commit and machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from medsam import load_model
from medsam.backends import default_threads
from medsam.imaging import load_scan
from medsam.paths import REPO, command_line
from medsam.predictor import EmbeddingCache, Predictor, Prompt
from medsam.prompts import bbox
from medsam.results import git_commit
from medsam.settings import settings
from medsam.volume import propagate

IMAGE = "brats2015_flair/images/brats2015_pat0006_1.nii.gz"


def encode_only(predictor: Predictor, scan, axis: int, slices: list[int]) -> float:
    """Seconds to render and encode ``slices`` from an empty cache."""
    predictor.cache = EmbeddingCache(2**31)
    start = time.perf_counter()
    for i in slices:
        predictor.set_image(scan.render(scan.default_window, axis, i))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=Path, default=settings().volumes, help="volumes folder (manifest.csv)")
    parser.add_argument("--image", default=IMAGE, help="the volume, as the manifest names it")
    parser.add_argument("--object", default="whole_tumor")
    parser.add_argument("--axis", type=int, default=1, choices=(0, 1, 2))
    parser.add_argument("--model", default="litemedsam")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "propagation.json")
    args = parser.parse_args()
    if args.volumes is None:
        raise SystemExit("Give --volumes (or set MEDSAM_VOLUMES): the folder with the volumes' manifest.csv.")
    manifest = pd.read_csv(args.volumes / "manifest.csv")
    row = manifest[(manifest["image"] == args.image) & (manifest["object"] == args.object)].iloc[0]
    scan = load_scan(args.volumes / args.image)
    values = [int(v) for v in str(row["label_value"]).split(",")]
    reference = np.isin(load_scan(args.volumes / row["label"]).data, values)
    per_slice = np.moveaxis(reference, args.axis, 0).sum(axis=(1, 2))
    z = int(np.argmax(per_slice))
    prompt = Prompt(box=bbox(scan.view(reference, args.axis, z)))
    predictor = load_model(args.model)
    predictor.set_image(scan.render(scan.default_window, args.axis, z))  # warm-up: first-call compilation
    runs = []
    for _ in range(args.runs):
        predictor.cache = EmbeddingCache(2**31)
        result = propagate(predictor, scan, scan.default_window, args.axis, z, prompt)
        kept = sorted(result.areas)
        baseline = encode_only(predictor, scan, args.axis, kept)
        runs.append({"seconds": round(result.seconds, 2), "slices": len(kept), "encoded": result.encoded,
                     "encode_only_seconds": round(baseline, 2), "stopped": result.stopped})
        print(f"propagated {len(kept)} slices ({result.encoded} encoded) in {result.seconds:.1f} s; "
              f"encoder alone on them {baseline:.1f} s; stopped: {result.stopped}", flush=True)
    seconds = statistics.median(r["seconds"] for r in runs)
    slices = statistics.median(r["slices"] for r in runs)
    baseline = statistics.median(r["encode_only_seconds"] for r in runs)
    record = {
        "command": command_line(["python", "-m", "bench.propagation"], sys.argv[1:]),
        "git_commit": git_commit(args.out.parent), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "threads": default_threads(),
                    "load_average": os.getloadavg()},
        "model": args.model, "backend": predictor.engine.tag, "image": args.image, "object": args.object,
        "axis": args.axis, "reference_slices": int((per_slice > 0).sum()), "start_slice": z, "runs": runs,
        "median_seconds": seconds, "seconds_per_100_slices": round(100 * seconds / slices, 1),
        "encode_only_seconds_per_100_slices": round(100 * baseline / slices, 1),
        "ratio_to_encode_only": round(seconds / baseline, 2), "target_seconds_per_100_slices": 60}
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{record['seconds_per_100_slices']} s per 100 slices (target 60; encoder alone "
          f"{record['encode_only_seconds_per_100_slices']} s, ratio {record['ratio_to_encode_only']})")


if __name__ == "__main__":
    main()
