"""What our own results (``results/``) and the published references say for each lesson, in sentences.

Read once per process from the committed CSVs. Our numbers are means over the benchmark's pairs;
published numbers come from ``results/published.csv`` and are always introduced as published, with
their source. Every function returns Markdown and degrades to a sentence saying what is missing.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pandas as pd
from scipy import stats

from ..paths import REPO

RESULTS = REPO / "results"
BENCH_COLUMNS = ["model", "dataset", "object", "strategy", "split", "dice", "dice_oracle", "boundary_complexity",
                 "intensity_difference"]
MISSING = "_No committed results for this yet (`results/` has none)._"


@cache
def benchmark(folder: Path = RESULTS) -> pd.DataFrame:
    try:
        return pd.read_csv(folder / "benchmark.csv", usecols=lambda c: c in BENCH_COLUMNS)
    except (OSError, ValueError):
        return pd.DataFrame(columns=BENCH_COLUMNS)


@cache
def table(name: str, folder: Path = RESULTS) -> pd.DataFrame:
    try:
        return pd.read_csv(folder / name)
    except (OSError, ValueError):
        return pd.DataFrame()


def _means(model: str, split: str | None = None) -> pd.Series:
    rows = benchmark()
    rows = rows[rows["model"] == model]
    if split:
        rows = rows[rows["split"] == split]
    return rows.groupby("strategy")["dice"].mean()


def published(source: str, strategy: str) -> pd.DataFrame:
    rows = table("published.csv")
    if rows.empty:
        return rows
    return rows[rows["source"].str.startswith(source) & rows["strategy"].str.contains(strategy, regex=False)]


def strong_and_weak(model: str = "litemedsam") -> str:
    rows = benchmark()
    rows = rows[(rows["model"] == model) & (rows["strategy"] == "box")]
    if rows.empty:
        return MISSING
    per = rows.groupby(["dataset", "object"])["dice"].agg(["mean", "size"]).query("size >= 3")["mean"].sort_values()
    (d0, o0), (d1, o1) = per.index[0], per.index[-1]
    return (f"**Ours** (LiteMedSAM, a tight box, {rows['dataset'].nunique()} datasets): mean DICE from "
            f"{per.iloc[0]:.2f} ({o0.replace('_', ' ')}, {d0}) to {per.iloc[-1]:.2f} ({o1.replace('_', ' ')}, {d1}); "
            f"{(per < 0.5).sum()} of {len(per)} targets stay under 0.5.")


def by_prompt() -> str:
    lines = []
    for model, split in (("litemedsam", None), ("litemedsam_ft", "test")):
        m = _means(model, split)
        if {"box", "point_center", "everything"} <= set(m.index):
            lines.append(f"{model}: box {m['box']:.2f}, one click {m['point_center']:.2f}, five clicks "
                         f"{m['points_5pos']:.2f}, everything {m['everything']:.2f}")
    pub = published("COSMOS reproduction", "")
    text = "**Ours** (mean DICE): " + "; ".join(lines) + "." if lines else MISSING
    if not pub.empty:
        pick = pub[pub["selection"] == "predicted-iou"].set_index("strategy")["value"]
        text += ("  \n**Published** (a third-party re-run of COSMOS with SAM ViT-B on CHAOS, the mask SAM ranks "
                 "first): " + ", ".join(f"{k} {v:.1f} %" for k, v in pick.items()) + ".")
    return text


def sensitivity_text() -> str:
    parts = []
    for model, split in (("litemedsam", None), ("litemedsam_ft", "test")):
        m = _means(model, split)
        if "box_jitter_30" in m:
            parts.append(f"{model}: centre click {m['point_center']:.2f} vs random click {m['point_random']:.2f}; "
                         f"box {m['box']:.2f}, jittered 0-10 px {m['box_jitter_10']:.2f}, 10-20 px "
                         f"{m['box_jitter_20']:.2f}, 20-30 px {m['box_jitter_30']:.2f}")
    return "**Ours** (mean DICE): " + "; ".join(parts) + "." if parts else MISSING


def clicks_text() -> str:
    rows = table("finetune_summary.csv")
    if rows.empty or "interactive" not in set(rows["strategy"]):
        return MISSING
    r = rows.set_index("strategy").loc["interactive"]
    return (f"**Ours** ({int(r['n'])} test pairs, up to 10 simulated corrective clicks): clicks to reach DICE 0.85 "
            f"(10 when never reached) {r['noc85_litemedsam']:.1f} for LiteMedSAM as published, "
            f"{r['noc85_litemedsam_ft']:.1f} with our decoder finetune; final DICE {r['dice_litemedsam']:.2f} vs "
            f"{r['dice_litemedsam_ft']:.2f}.")


def complexity_text(model: str = "litemedsam") -> str:
    rows = benchmark()
    rows = rows[(rows["model"] == model) & (rows["strategy"] == "box")].dropna(subset=["boundary_complexity"])
    if len(rows) < 3:
        return MISSING
    rho_b = stats.spearmanr(rows["boundary_complexity"], rows["dice"]).statistic
    rho_i = stats.spearmanr(rows["intensity_difference"], rows["dice"]).statistic
    return (f"**Ours** (LiteMedSAM, a tight box, {len(rows)} pairs): Spearman's rho between DICE and boundary "
            f"complexity {rho_b:+.2f}, and intensity difference {rho_i:+.2f}.")


def finetune_text() -> str:
    rows = table("finetune_summary.csv")
    pub = table("published.csv")
    text = MISSING
    if not rows.empty:
        r = rows.set_index("strategy")
        text = ("**Ours** (paired, same 351 test pairs, LiteMedSAM as published -> with our decoder finetune): "
                + ", ".join(f"{s.replace('_', ' ')} {r.loc[s, 'dice_litemedsam']:.2f} -> "
                            f"{r.loc[s, 'dice_litemedsam_ft']:.2f}"
                            for s in ("box", "point_center", "points_5pos") if s in r.index) + ".")
    gains = pub[pub.get("strategy", pd.Series(dtype=str)) == "finetune gain"] if not pub.empty else pub
    if not gains.empty:
        text += ("  \n**Published** (COSMOS paper, task finetuning of SAM): mean DICE "
                 + ", ".join(f"+{v:.2f} % ({m})" for m, v in zip(gains["model"], gains["value"])) + ".")
    return text


def candidates_text() -> str:
    rows = benchmark()
    rows = rows[rows["strategy"].isin(["box", "point_center"])]
    if rows.empty:
        return MISSING
    gap = rows.groupby(["model", "strategy"])[["dice", "dice_oracle"]].mean()
    ours = "; ".join(f"{m}, {s.replace('_', ' ')}: {r['dice']:.2f} ranked first vs {r['dice_oracle']:.2f} best"
                     for (m, s), r in gap.iterrows())
    pub = published("COSMOS reproduction", "S2 1 point").set_index("selection")["value"]
    text = f"**Ours** (mean DICE): {ours}."
    if {"oracle", "predicted-iou"} <= set(pub.index):
        text += (f"  \n**Published** (third-party COSMOS re-run, SAM ViT-B, one point): {pub['predicted-iou']:.1f} % "
                 f"with the mask SAM ranks first, {pub['oracle']:.1f} % with the best of its three.")
    return text


def heads_text() -> str:
    rows = table("label_efficiency.csv")
    if rows.empty:
        return MISSING
    means = rows.groupby(["head", "k_label"])["dice_mean"].mean().unstack()
    cols = [c for c in ("1", "2", "4", "8", "all") if c in means.columns]
    return ("**Ours** (mean test DICE over " + str(rows["dataset"].nunique()) + " datasets, by labelled images k "
            + "/".join(cols) + "): " + "; ".join(f"{h} " + "/".join(f"{means.loc[h, c]:.2f}" for c in cols)
                                                for h in means.index) + ".")


def encoder_sizes_text() -> str:
    rows = benchmark()
    sizes = [m for m in ("sam_vit_b", "sam_vit_l", "sam_vit_h") if m in set(rows["model"])]
    if len(sizes) < 2:
        return ("**Ours**: not measured yet: SAM ViT-B/L/H weights cannot be downloaded on the machines these "
                "results were made on (see the README).")
    m = rows[rows["strategy"] == "box"].groupby("model")["dice"].mean()
    return "**Ours** (box, mean DICE): " + ", ".join(f"{s} {m[s]:.2f}" for s in sizes if s in m) + "."

