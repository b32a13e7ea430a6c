"""Time the Dashboard tab on a results folder: loading, the answers and figures, and the tab's Gradio Blocks.

    python -m bench.dashboard_render [--results results] [--synthetic-rows 50000] [--repeats 5]

Prints the median of --repeats runs of each step with the number of rows; the target for the tab
(Blocks construction: the CSVs loaded, the four answers and the table built) is under 2 s. A filter
change builds the four answers for the new selection, and the detailed figures too while "More
figures" is open; each should take well under 1 s. With
``--synthetic-rows N`` it runs on a temporary folder holding the real published.csv, N generated
benchmark rows covering every strategy (interactive clicks included) and generated finetuning
tables: the size of a full benchmark before one exists. Generated numbers are for timing only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

TARGETS = [("cosmos_heart_mri", "mri", "left_ventricle"), ("brats2021_flair_edema", "mri", "edema"),
           ("busi", "ultrasound", "breast_tumor"), ("camus_echo", "echocardiography", "left_ventricle"),
           ("cosmos_pancreas_ct", "ct", "pancreatic_mass"), ("covid_cxr_lungs", "x-ray", "lungs"),
           ("drive", "fundus", "retinal_vessels"), ("carotid_us", "ultrasound", "common_carotid_artery")]


def synthetic_rows(n_rows: int, seed: int = 0) -> pd.DataFrame:
    """About ``n_rows`` benchmark rows in the benchmark's columns: every strategy, 3 seeds for the
    random ones, per-pair descriptors, click curves; DICE drawn at random (timing only)."""
    from medsam.metrics import noc
    from medsam.prompts import STRATEGIES
    from medsam.results import COLUMNS

    rng = np.random.default_rng(seed)
    units = [(s, k) for s, spec in STRATEGIES.items() for k in range(3 if spec.random else 1)]
    n_pairs = -(-n_rows // len(units))
    rows = []
    for p in range(n_pairs):
        dataset, modality, obj = TARGETS[p % len(TARGETS)]
        image = f"{dataset}/images/img_{p:05d}.png"
        pair = {"model": "litemedsam", "dataset": dataset, "modality": modality, "object": obj, "image": image,
                "mask": image.replace("images", "masks"), "group": f"{dataset}:{p // 4}",
                "split": "test" if p % 10 else "train", "boundary_complexity": float(rng.lognormal(1, 1)),
                "intensity_difference": float(rng.uniform(0, 0.4)), "relative_size": float(rng.lognormal(-3, 1)),
                "encode_ms": 1500.0, "multimask": True, "n_components": 1, "n_prompted": 1}
        for strategy, s in units:
            dice = float(rng.beta(4, 2))
            row = {**pair, "strategy": strategy, "seed": s, "dice": dice,
                   "dice_oracle": min(1.0, dice + rng.uniform(0, 0.1)), "iou": dice / (2 - dice),
                   "hd95": rng.uniform(1, 50) if rng.random() > 0.05 else np.inf, "nsd": dice,
                   "decode_ms": 120.0, "wall_ms": 125.0}
            if strategy.startswith("box_jitter"):
                row["jitter_frac"] = float(rng.lognormal(-0.5, 1))
            if strategy == "interactive":
                clicks = np.minimum(1.0, np.cumsum(rng.uniform(0, 0.3, 10)) + 0.3).round(4).tolist()
                row |= {"dice_per_click": json.dumps(clicks), "noc85": noc(clicks, 0.85), "noc90": noc(clicks, 0.90)}
            if strategy == "everything":
                row["n_masks"] = 40
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS).head(n_rows)


def synthetic_finetune(bench: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """finetune.csv rows (zero-shot and '_ft' on the test pairs, box and centre point) and
    label_efficiency.csv rows (3 datasets, 2 heads, k = 1..64, 5 draws, 2 classes); timing only."""
    rng = np.random.default_rng(seed)
    zs = bench[(bench["split"] == "test") & bench["strategy"].isin(["box", "point_center"])]
    zs = zs[["model", "strategy", "dataset", "modality", "object", "image", "mask", "seed", "dice"]]
    ft = zs.assign(model=zs["model"] + "_ft", dice=np.clip(zs["dice"] + rng.normal(0.05, 0.05, len(zs)), 0, 1))
    label = pd.DataFrame([{"dataset": ds, "head": head, "k": k, "k_label": f"{k}-shot", "draw": draw, "class": c,
                           "n_test": 50, "dice_mean": min(1.0, 0.4 + 0.08 * np.log2(k) + rng.normal(0, 0.03)),
                           "dice_std": 0.1}
                          for ds, _, _ in TARGETS[:3] for head in ("decoder", "adapter") for k in 2 ** np.arange(7)
                          for draw in range(5) for c in ("a", "b")])
    return pd.concat([zs, ft]), label


def median_s(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def results_folder(args: argparse.Namespace, work: Path) -> Path:
    """--results, or with --synthetic-rows a folder of generated tables in ``work``."""
    if not args.synthetic_rows:
        return args.results
    folder = work / "results"
    folder.mkdir()
    bench = synthetic_rows(args.synthetic_rows)
    bench.to_csv(folder / "benchmark.csv", index=False)
    for name, table in zip(("finetune", "label_efficiency"), synthetic_finetune(bench)):
        table.to_csv(folder / f"{name}.csv", index=False)
    if (args.results / "published.csv").is_file():
        shutil.copy(args.results / "published.csv", folder / "published.csv")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    parser.add_argument("--synthetic-rows", type=int, help="time on N generated benchmark rows instead")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import gradio as gr

    from medsam.dashboard import build_figures, filter_rows, load_results
    from medsam.dashboard.answers import build_answers
    from medsam.ui.dashboard_tab import build_dashboard_tab

    work = Path(tempfile.mkdtemp(prefix="medsam-dashboard-bench-"))
    tempfile.tempdir = str(work)  # the tab's download CSVs go here, removed at the end
    folder = results_folder(args, work)
    results = load_results(folder)
    build_figures(results)  # warm-up: plotly's lazy imports

    def blocks(with_tab: bool) -> gr.Blocks:
        with gr.Blocks(analytics_enabled=False) as demo:
            with gr.Tab("Dashboard"):
                if with_tab:
                    build_dashboard_tab(folder)
        return demo

    def change(modalities: list[str], figures_shown: bool) -> None:  # what a filter change runs
        rows = filter_rows(results.benchmark, modalities=modalities)
        build_answers(rows, results.published)
        if figures_shown:
            build_figures(results, modalities=modalities)

    _, figures = build_figures(results)
    _, answers = build_answers(results.benchmark, results.published)
    one = results.benchmark["modality"].dropna().iloc[:1].tolist()
    steps = {
        "load CSVs": lambda: load_results(folder),
        f"{len(figures)} figures, all rows": lambda: build_figures(results),
        f"{len(answers)} answers, all rows": lambda: build_answers(results.benchmark, results.published),
        "figures and answers to JSON": lambda: [f.to_json() for f in [*figures.values(),
                                                                      *(a.figure for a in answers.values())]],
        "Blocks with the tab (load + answers + table)": lambda: blocks(True),
        "Blocks without the tab (baseline)": lambda: blocks(False),
        f"filter change to modality {one}: answers": lambda: change(one, False),
        f"filter change to modality {one}, More figures open": lambda: change(one, True),
    }
    print(f"{folder}: {len(results.benchmark):,} benchmark rows, {results.benchmark['mask'].nunique():,} pairs, "
          f"{len(results.finetune):,} finetune rows, {len(results.label_efficiency):,} label-efficiency rows; "
          f"median of {args.repeats}")
    for name, fn in steps.items():
        print(f"  {name:52s} {median_s(fn, args.repeats):6.3f} s")
    config = json.dumps(blocks(True).get_config_file(), default=str)  # gr.State carries a function
    print(f"  page config with the tab: {len(config) / 1e6:.2f} MB")
    shutil.rmtree(work)

if __name__ == "__main__":
    main()
