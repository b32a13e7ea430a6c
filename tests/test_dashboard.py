"""Dashboard figures from small synthetic result tables: the numbers in traces and titles."""

from __future__ import annotations

import json
import re
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from medsam import dashboard as d
from medsam.dashboard.answers import QUESTIONS, build_answers
from medsam.dashboard.style import CAPTION_CHARS, TITLE_CHARS
from medsam.ui.dashboard_tab import build_dashboard_tab

REPO = Path(__file__).resolve().parents[1]

MODELS = ["litemedsam", "sam_vit_b"]
TARGETS = [("ct_ds", "ct", "liver"), ("mri_ds", "mri", "tumor"), ("us_ds", "ultrasound", "nodule")]
SEEDS = {"box": 1, "point_center": 1, "points_5pos": 2, "box_jitter_10": 2, "box_jitter_20": 2, "everything": 1,
         "interactive": 1}
PAIRS = 5
PUBLISHED = pd.DataFrame([
    ["SAM-Med2D README", "OpenGVLab/SAM-Med2D README.md", "SAM (256)", "SA-Med2D-20M test", "all", "box", "dice",
     61.63, None, ""],
    ["SAM-Med2D README", "OpenGVLab/SAM-Med2D README.md", "SAM (256)", "SA-Med2D-20M test", "all", "1 point", "dice",
     18.94, None, ""],
    ["SAM-Med2D README", "OpenGVLab/SAM-Med2D README.md", "SAM (256)", "SA-Med2D-20M test", "all", "3 points",
     "dice", 28.28, None, ""],
    ["DAFT", "automl/CVPR24-MedSAM-on-Laptop README.md", "DAFT", "challenge validation", "ct", "box", "dice", 93.14,
     None, ""],
    ["COSMOS reproduction", "Leon42325/medical-sam-project README.md", "SAM ViT-B", "CHAOS", "ct+mri", "S5 box",
     "dice", 90.9, "predicted-iou", ""],
    ["COSMOS paper", "abstract", "SAM ViT-B", "COSMOS 1050K", "all", "finetune gain", "dice_gain_pct", 4.39, None, ""],
], columns=d.COLUMNS["published"])


def make_rows() -> pd.DataFrame:
    """Two models x 3 targets x 5 pairs x every strategy (and seed) in SEEDS, random DICE."""
    rng = np.random.default_rng(0)
    rows = []
    for dataset, modality, obj in TARGETS:
        for p in range(PAIRS):
            pair = {"dataset": dataset, "modality": modality, "object": obj, "image": f"{dataset}/images/{p}.png",
                    "mask": f"{dataset}/masks/{p}.png", "group": f"{dataset}:{p}",
                    "split": "train" if p == 0 else "test",
                    "boundary_complexity": rng.uniform(1, 20), "intensity_difference": rng.uniform(0, 0.3),
                    "relative_size": rng.uniform(0.005, 0.3)}
            for model in MODELS:
                for strategy, seeds in SEEDS.items():
                    for seed in range(seeds):
                        dice = rng.uniform(0.2, 0.9)
                        row = {"model": model, **pair, "strategy": strategy, "seed": seed, "dice": dice,
                               "dice_oracle": dice if strategy == "everything" else dice + rng.uniform(0, 0.1)}
                        if "jitter" in strategy:
                            row["jitter_frac"] = rng.uniform(0.05, 2)
                        if strategy == "interactive":
                            clicks = np.sort(rng.uniform(0.3, 1, rng.integers(2, 6))).round(3).tolist()
                            hits = [k + 1 for k, v in enumerate(clicks) if v >= 0.85]
                            row |= {"dice_per_click": json.dumps(clicks), "dice": clicks[-1],
                                    "noc85": hits[0] if hits else 10}
                        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("results")
    make_rows().to_csv(out / "benchmark.csv", index=False)
    PUBLISHED.to_csv(out / "published.csv", index=False)
    return out


@pytest.fixture(scope="module")
def results(folder: Path) -> d.Results:
    return d.load_results(folder)


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return make_rows()


def _pair_stats(values: list[float]) -> tuple[float, float, int]:
    """Hand-made mean, 95% CI half-width and n."""
    n = len(values)
    return float(np.mean(values)), 1.959963984540054 * float(np.std(values, ddof=1)) / np.sqrt(n), n


def _per_pair(df: pd.DataFrame, column: str = "dice") -> list[float]:
    return [float(df[df["mask"] == m][column].mean()) for m in df["mask"].unique()]


def _trace(fig, name: str, axis: str = "y"):
    matches = [t for t in fig.data if t.name == name and t.yaxis == axis]
    assert len(matches) == 1, [(t.name, t.yaxis) for t in fig.data]
    return matches[0]


def _title(fig) -> str:
    """The title as one line: wrapping breaks lines at spaces, the caption is in <sup>."""
    return re.sub(r"</?sup>", "", fig.layout.title.text).replace("<br>", " ")


# --- loading and filtering -------------------------------------------------------------------


def test_load_results_reads_tables_and_skips_a_half_written_line(tmp_path: Path, raw: pd.DataFrame) -> None:
    text = raw.head(10).to_csv(index=False)
    (tmp_path / "benchmark.csv").write_text(text + text.splitlines()[1][:40])  # no newline: being appended
    res = d.load_results(tmp_path)
    assert len(res.benchmark) == 10
    assert res.benchmark["dice"].tolist() == pytest.approx(raw["dice"].head(10).tolist())
    assert res.published.empty and res.finetune.empty and res.label_efficiency.empty and res.label_efficiency3d.empty
    assert set(d.COLUMNS["finetune"]) <= set(res.finetune.columns)


def test_missing_or_empty_folder_gives_messages_not_errors(tmp_path: Path) -> None:
    (tmp_path / "finetune.csv").write_text("")
    rows, figures = d.build_figures(d.load_results(tmp_path))
    assert rows.empty
    for name, fig in figures.items():
        assert "Nothing to show" in _title(fig) or "No finetuning results yet" in _title(fig), name
        assert not fig.data


def test_filter_rows(results: d.Results) -> None:
    b = results.benchmark
    assert len(d.filter_rows(b)) == len(b)
    assert d.filter_rows(b, modalities=[]).empty
    sel = d.filter_rows(b, ["litemedsam"], ["ct", "mri"], ["box"], ["test"])
    assert len(sel) == 2 * (PAIRS - 1)
    assert set(sel["modality"]) == {"ct", "mri"} and set(sel["split"]) == {"test"}
    assert d.choices(b, "strategy") == [s for s in d.STRATEGY_ORDER if s in SEEDS]


def test_empty_selection_says_so(results: d.Results) -> None:
    _, figures = d.build_figures(results, strategies=[])
    for name in ("modality", "heatmap", "oracle", "descriptors", "jitter", "interactive", "published"):
        assert "Nothing to show" in _title(figures[name]), name
        assert figures[name].layout.annotations[0].text.startswith("Nothing to show")


# --- figures ---------------------------------------------------------------------------------


def test_modality_bars_are_means_over_pairs(results: d.Results, raw: pd.DataFrame) -> None:
    fig = d.fig_modality(results.benchmark)
    assert [a.text for a in fig.layout.annotations] == [d.model_label(m) for m in d.model_order(MODELS)]
    for model, axis in zip(d.model_order(MODELS), ("y", "y2")):
        for strategy in ("box", "points_5pos"):
            bar = _trace(fig, d.strategy_name(strategy), axis)
            sel = raw[(raw["model"] == model) & (raw["strategy"] == strategy) & (raw["modality"] == "mri")]
            mean, ci, n = _pair_stats(_per_pair(sel))
            i = list(bar.x).index("mri")
            assert bar.y[i] == pytest.approx(mean)
            assert bar.error_y.array[i] == pytest.approx(ci)
            assert bar.customdata[i][1] == n == PAIRS
            assert bar.customdata[i][2] == strategy and "benchmark name: %{customdata[2]}" in bar.hovertemplate
    assert f"{len(TARGETS) * PAIRS} pairs, {len(raw)} rows, 2 models" in _title(fig)


def test_heatmap_cells(results: d.Results, raw: pd.DataFrame) -> None:
    fig = d.fig_heatmap(d.filter_rows(results.benchmark, models=["sam_vit_b"]))
    (heat,) = fig.data
    y, x = list(heat.y).index("tumor (mri)"), list(heat.x).index("5 positive clicks")
    assert heat.customdata[y][x][1] == "points_5pos"
    sel = raw[(raw["model"] == "sam_vit_b") & (raw["strategy"] == "points_5pos") & (raw["object"] == "tumor")]
    assert heat.z[y][x] == pytest.approx(np.mean(_per_pair(sel)))
    assert heat.text[y][x] == f"{np.mean(_per_pair(sel)):.2f}"


def test_descriptor_titles_carry_spearman_and_partial_rho(results: d.Results, raw: pd.DataFrame) -> None:
    fig = d.fig_descriptors(d.filter_rows(results.benchmark, models=["litemedsam"]), "points_5pos")
    assert "(5 positive clicks)" in _title(fig) and "LiteMedSAM as published (medical)" in _title(fig)
    sel = raw[(raw["model"] == "litemedsam") & (raw["strategy"] == "points_5pos")]
    pairs = sel.groupby("mask").agg(dice=("dice", "mean"), bc=("boundary_complexity", "first"),
                                    size=("relative_size", "first"))
    rho, p = stats.spearmanr(pairs["bc"], pairs["dice"])
    title = fig.layout.annotations[0].text
    assert title.startswith(f"ρ = {rho:.3f} (p = {p:.2g}, n = {len(pairs)})")
    # Partial: ranks of x and y residualised on the ranks of size, then correlated.
    rz = stats.rankdata(pairs["size"])
    ranks = (stats.rankdata(pairs["bc"]), stats.rankdata(pairs["dice"]))
    res = [r - np.polyval(np.polyfit(rz, r, 1), rz) for r in ranks]
    partial = stats.pearsonr(*res).statistic
    assert f"partial, size controlled: ρ = {partial:.3f}" in title
    assert d.partial_spearman(pairs["bc"], pairs["dice"], pairs["size"])[0] == pytest.approx(partial)
    # Points coloured by modality, plus a fit line per panel.
    assert {t.name for t in fig.data} == {"ct", "mri", "ultrasound", "linear fit"}
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis2.type == "linear"
    # Several models: one row each, never pooled; each row's axis says which model it is.
    both = d.fig_descriptors(results.benchmark, "points_5pos")
    assert len(both.layout.annotations) == 6 and both.layout.annotations[3].text == title  # litemedsam: row 2
    for model, axis in zip(d.model_order(MODELS), ("yaxis", "yaxis4")):
        assert d.model_label(model) in both.layout[axis].title.text.replace("<br>", " ")
    points = [t for t in both.data if t.name == "mri" and t.xaxis == "x4"]
    assert len(points) == 1 and len(points[0].x) == PAIRS  # row 2 holds the second model's pairs only


def test_oracle_gap(results: d.Results, raw: pd.DataFrame) -> None:
    fig = d.fig_oracle_gap(d.filter_rows(results.benchmark, models=["litemedsam"]))
    pick, best = _trace(fig, "model's pick (deployable)"), _trace(fig, "best of candidates (oracle)")
    assert d.strategy_name("everything") not in pick.x
    sel = raw[(raw["model"] == "litemedsam") & (raw["strategy"] == "points_5pos")]
    i = list(pick.x).index("5 positive clicks")
    gap = np.mean(_per_pair(sel, "dice_oracle")) - np.mean(_per_pair(sel, "dice"))
    assert pick.y[i] == pytest.approx(np.mean(_per_pair(sel)))
    assert best.y[i] == pytest.approx(np.mean(_per_pair(sel, "dice_oracle")))
    assert best.text[i] == f"gap {gap:+.3f}"


def test_jitter(results: d.Results, raw: pd.DataFrame) -> None:
    fig = d.fig_jitter(results.benchmark)
    pooled = _trace(fig, "all modalities")
    assert list(pooled.x) == ["none", "0-10 px", "10-20 px"]
    sel = raw[raw["strategy"] == "box_jitter_20"]
    per_pair = [sel[(sel["mask"] == m) & (sel["model"] == k)]["dice"].mean()
                for m in sel["mask"].unique() for k in MODELS]
    assert pooled.y[2] == pytest.approx(np.mean(per_pair))
    assert pooled.customdata[2][2] == "box_jitter_20"  # the benchmark name, in the hover
    shifted = raw[raw["strategy"].str.startswith("box_jitter")]
    rho, p = stats.spearmanr(shifted["jitter_frac"], shifted["dice"])
    assert f"ρ = {rho:.3f} (p = {p:.2g}" in fig.layout.annotations[1].text


def test_interactive_curve_and_noc(results: d.Results, raw: pd.DataFrame) -> None:
    fig = d.fig_interactive(results.benchmark)
    sel = raw[(raw["strategy"] == "interactive") & (raw["model"] == "sam_vit_b")]
    curves = [json.loads(v) for v in sel["dice_per_click"]]
    width = max(map(len, curves))
    padded = [c + [c[-1]] * (width - len(c)) for c in curves]  # a finished run keeps its last DICE
    line = _trace(fig, "SAM ViT-B (zero-shot)")
    assert list(line.x) == list(range(1, width + 1))
    assert line.y[2] == pytest.approx(np.mean([c[2] for c in padded]))
    noc = _trace(fig, "NoC@85", "y2")
    ct = raw[(raw["strategy"] == "interactive") & (raw["modality"] == "ct")]
    assert noc.y[list(noc.x).index("ct")] == pytest.approx(ct["noc85"].mean())


def test_published_beside_ours_labelled_and_converted(results: d.Results, raw: pd.DataFrame) -> None:
    fig = d.fig_published(results.benchmark, results.published)
    names = [t.name for t in fig.data]
    assert all(n.startswith(("ours: ", "published: ")) for n in names)
    sam = _trace(fig, "published: SAM-Med2D README (SA-Med2D-20M test) — SAM (256)")
    assert dict(zip(sam.x, sam.y)) == pytest.approx({"box": 0.6163, "1 point": 0.1894})  # no ours for 3 points
    assert sam.marker.pattern.shape == "/"
    assert "published as %{customdata[0]} %" in sam.hovertemplate
    assert sam.customdata[0][1] == "OpenGVLab/SAM-Med2D README.md"
    cosmos = _trace(fig, "published: COSMOS reproduction (CHAOS) — SAM ViT-B, predicted-iou pick")
    assert list(cosmos.x) == ["box"] and cosmos.y[0] == pytest.approx(0.909)
    daft = _trace(fig, "published: DAFT (challenge validation) — DAFT", "y2")  # per modality: the box panel
    assert list(daft.x) == ["ct"] and daft.y[0] == pytest.approx(0.9314)
    published_values = set(PUBLISHED["value"] / 100)
    for t in fig.data:
        if t.name.startswith("ours: "):
            assert not published_values & {round(v, 6) for v in t.y}
    ours = _trace(fig, "ours: LiteMedSAM as published (medical), predicted-iou pick")
    sel = raw[(raw["model"] == "litemedsam") & (raw["strategy"] == "point_center")]
    assert dict(zip(ours.x, ours.y))["1 point"] == pytest.approx(np.mean(_per_pair(sel)))
    assert dict(zip(ours.x, ours.customdata[:, 2]))["1 point"] == "point_center"
    assert "everything (grid)" not in ours.x  # its DICE is the best mask's: shown only as an oracle pick
    assert "everything (grid)" in _trace(fig, "ours: LiteMedSAM as published (medical), oracle pick").x


def test_finetune_missing_then_paired(results: d.Results, raw: pd.DataFrame) -> None:
    assert "No finetuning results yet" in _title(d.fig_finetune(results.finetune, results.published))
    assert "No finetuning results yet" in _title(d.fig_label_efficiency(results.label_efficiency))
    base = raw[raw["model"] == "litemedsam"][d.COLUMNS["finetune"]]
    tuned = base.assign(model="litemedsam_ft", dice=base["dice"] + 0.05 * (base["modality"] == "ct"))
    fig = d.fig_finetune(pd.concat([base, tuned]), results.published)
    bar = next(t for t in fig.data if t.name == "box")
    assert ("ΔDICE = LiteMedSAM + our decoder finetune (litemedsam_ft) − LiteMedSAM as published (medical)"
            in _title(fig)) and "zero-shot" not in _title(fig)
    deltas = dict(zip(bar.y, bar.x))
    assert deltas["liver (ct)"] == pytest.approx(0.05) and deltas["tumor (mri)"] == pytest.approx(0)
    assert bar.customdata[0][2] == "box" and "benchmark name" in bar.hovertemplate
    gain = next(t for t in fig.data if t.name.startswith("published: COSMOS paper"))
    assert gain.x[0] == pytest.approx(0.0439) and all(not t.name.startswith("published") for t in fig.data[:-1])
    assert "Nothing to show" in _title(d.fig_finetune(pd.concat([base, tuned]), modalities=["pet"]))


def test_label_efficiency() -> None:
    rows = [{"dataset": ds, "head": head, "k": k, "k_label": str(k), "draw": draw, "class": c, "n_test": n,
             "dice_mean": 0.5 + 0.01 * k + 0.02 * draw + (0.1 if c == "b" else 0), "dice_std": 0.1}
            for ds in ("busi", "drive") for head in ("decoder", "adapter") for k in (1, 4, 16)
            for draw in range(3) for c, n in (("a", 10), ("b", 30))]
    fig = d.fig_label_efficiency(pd.DataFrame(rows))
    line = next(t for t in fig.data if t.name == "decoder" and t.xaxis == "x")
    # per draw: classes weighted by n_test (0.075 from class b); then mean over draws 0..2 (+0.02)
    assert list(line.x) == [1, 4, 16]
    assert line.y[1] == pytest.approx(0.5 + 0.04 + 0.075 + 0.02)
    assert fig.layout.xaxis.type == "log" and [a.text for a in fig.layout.annotations] == ["busi", "drive"]


def label_efficiency3d_rows() -> pd.DataFrame:
    return pd.DataFrame([{"dataset": "msd_hippocampus", "head": head, "k": k, "k_label": str(k), "draw": draw,
                          "class": c, "n_test": 20, "dice_mean": 0.4 + 0.1 * k + 0.03 * draw + (0.1 if c == "b" else 0),
                          "dice_std": 0.1, "nsd_mean": 0.5 + 0.01 * k, "nsd_std": 0.1, "steps": 1000}
                         for head in ("cnn", "unet") for k in (1, 2, 4) for draw in range(3) for c in ("a", "b")])


def test_label_efficiency3d_shows_dice_and_nsd_or_says_it_is_missing(tmp_path: Path) -> None:
    missing = d.fig_label_efficiency3d(d.load_results(tmp_path).label_efficiency3d)
    assert "No finetuning results yet: label_efficiency3d.csv is missing" in _title(missing) and not missing.data
    label_efficiency3d_rows().to_csv(tmp_path / "label_efficiency3d.csv", index=False)
    fig = d.fig_label_efficiency3d(d.load_results(tmp_path).label_efficiency3d)
    assert [a.text for a in fig.layout.annotations] == ["msd_hippocampus: 3D DICE", "msd_hippocampus: NSD at 2 mm"]
    dice = next(t for t in fig.data if t.name == "unet" and t.xaxis == "x")
    # per draw the two classes' mean (+0.05), then the mean over draws 0..2 (+0.03)
    assert list(dice.x) == [1, 2, 4] and dice.y[1] == pytest.approx(0.4 + 0.2 + 0.05 + 0.03)
    nsd = next(t for t in fig.data if t.name == "unet" and t.xaxis == "x2")
    assert nsd.y[2] == pytest.approx(0.54) and "NSD at 2 mm" in nsd.hovertemplate
    assert fig.layout.xaxis.title.text == "k (labelled volumes, log2)" and fig.layout.yaxis2.title.text == "NSD at 2 mm"
    assert "test volumes: msd_hippocampus 20" in _title(fig) and "unet: trained from scratch" in _title(fig)
    assert "1,000 steps per training whatever k" in _title(fig)
    for line in fig.layout.title.text.split("<br>"):
        assert len(re.sub("</?sup>", "", line)) <= (CAPTION_CHARS if line.startswith("<sup>") else TITLE_CHARS)


def test_label_efficiency_band_stays_within_0_and_1(tmp_path: Path) -> None:
    # a collapsed draw (DICE 0) beside a good one: mean 0.45, SD 0.64, so mean - SD is below 0
    rows = label_efficiency3d_rows()
    rows.loc[rows["draw"] == 0, "dice_mean"] = 0.0
    rows.loc[rows["draw"] > 0, "dice_mean"] = 0.9
    rows[rows["draw"] < 2].to_csv(tmp_path / "label_efficiency3d.csv", index=False)
    fig = d.fig_label_efficiency3d(d.load_results(tmp_path).label_efficiency3d)
    band = next(t for t in fig.data if t.name == "unet ±1 SD" and t.xaxis == "x")
    assert min(band.y) == 0.0 and max(band.y) == 1.0


def test_label_efficiency3d_caption_gives_steps_that_grow_with_k(tmp_path: Path) -> None:
    rows = label_efficiency3d_rows()
    rows["steps"] = rows["k"].map({1: 1000, 2: 1000, 4: 2640})
    rows.to_csv(tmp_path / "label_efficiency3d.csv", index=False)
    fig = d.fig_label_efficiency3d(d.load_results(tmp_path).label_efficiency3d)
    assert "1,000 steps per training at k=1 to 2,640 at k=4" in _title(fig) and "whatever k" not in _title(fig)


def test_volumes_figure_bars_each_structure_per_strategy_and_flags_model_references(tmp_path: Path) -> None:
    missing = d.fig_volumes(d.load_results(tmp_path).benchmark3d)
    assert "No 3D benchmark results yet" in _title(missing) and not missing.data
    rows = [{"model": model, "dataset": ds, "object": obj, "image": f"{ds}_{v}.nii.gz", "reference": ref,
             "split": "test", "strategy": strategy,
             "dice3d": base + (0.1 if strategy == "box_every_slice" else 0) + 0.02 * v}
            for model in ("litemedsam", "litemedsam_ft")
            for ds, obj, ref, base in (("msd_hippocampus", "hippocampus", "expert", 0.4),
                                       ("totalseg_ct", "liver", "model (TotalSegmentator)", 0.8))
            for strategy in ("box_propagate", "box_every_slice") for v in range(3)]
    pd.DataFrame(rows).to_csv(tmp_path / "benchmark3d.csv", index=False)
    fig = d.fig_volumes(d.load_results(tmp_path).benchmark3d)
    assert [a.text for a in fig.layout.annotations] == [d.model_label("litemedsam"), d.model_label("litemedsam_ft")]
    every = next(t for t in fig.data if t.name == "ours: a box on every slice (upper bound)" and t.xaxis == "x")
    assert list(every.x) == ["msd_hippocampus: hippocampus", "totalseg_ct: liver (reference: model prediction)"]
    assert every.y[0] == pytest.approx(0.52) and every.customdata[0][1] == 3  # mean of 0.5, 0.52, 0.54 over 3 volumes
    assert "3 volumes each" in _title(fig) and fig.layout.yaxis.range == (0, 1)


def test_titles_wrap_to_fit_a_phone(results: d.Results) -> None:
    """Plotly cuts a title wider than its figure: titles and captions come in lines short enough
    for a figure 310 px wide (the browser test measures them)."""
    rows, figures = d.build_figures(results)
    _, answers = build_answers(rows, results.published)
    for name, fig in [*figures.items(), *((key, answer.figure) for key, answer in answers.items())]:
        lines = fig.layout.title.text.split("<br>")
        assert any(line.startswith("<sup>") for line in lines), f"{name}: a caption below the title"
        for line in lines:
            limit = CAPTION_CHARS if line.startswith("<sup>") else TITLE_CHARS
            assert len(re.sub("</?sup>", "", line)) <= limit, (name, line)
    assert len(_title(figures["published"])) > 2 * CAPTION_CHARS  # a long title, wrapped, not shortened


# --- the tab ---------------------------------------------------------------------------------


@pytest.mark.parametrize("with_results", [True, False])
def test_tab_builds_with_elem_ids(folder: Path, tmp_path: Path, with_results: bool) -> None:
    with gr.Blocks() as demo:
        with gr.Tab("Dashboard"):
            build_dashboard_tab(folder if with_results else tmp_path)
    ids = {c.get("props", {}).get("elem_id") for c in demo.get_config_file()["components"]}
    assert {"dash-intro", "dash-filters", "dash-models", "dash-modalities", "dash-strategies", "dash-splits",
            "dash-summary", "dash-more", "dash-note", "dash-modality", "dash-published", "dash-heatmap", "dash-oracle",
            "dash-descriptor-strategy", "dash-descriptors", "dash-jitter", "dash-interactive", "dash-finetune",
            "dash-label-efficiency", "dash-label-efficiency-3d", "dash-rows", "dash-table", "dash-download"} <= ids
    assert {f"dash-{key}" for key in QUESTIONS} | {f"dash-answer-{key}" for key in QUESTIONS} <= ids
    if with_results:  # filters show plain names and pass on the benchmark's
        props = {c["props"].get("elem_id"): c["props"] for c in demo.get_config_file()["components"]}
        assert ("box jittered 10-20 px", "box_jitter_20") in map(tuple, props["dash-strategies"]["choices"])
        assert ("LiteMedSAM as published (medical)", "litemedsam") in map(tuple, props["dash-models"]["choices"])
        assert "box_jitter_20" in props["dash-strategies"]["value"]


def test_tab_handlers_filter_answers_figures_table_and_download(folder: Path) -> None:
    with gr.Blocks() as demo:
        build_dashboard_tab(folder)
    by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    fns = list(demo.fns.values())
    update = next(f for f in fns if by_id["dash-summary"] in f.outputs)
    expand = next(f for f in fns if by_id["dash-label-efficiency"] in f.outputs)
    selection = (["litemedsam"], ["ct"], ["box"], ["test"])
    out = dict(zip(update.outputs, update.fn(False, *selection, "box")))  # "More figures" closed
    assert f"{PAIRS - 1} rows, {PAIRS - 1} pairs" in out[by_id["dash-summary"]]
    box = make_rows().query("model == 'litemedsam' and modality == 'ct' and strategy == 'box' and split == 'test'")
    assert out[by_id["dash-answer-where"]] == (f"### Where does it work?\nWith a box, mean DICE on ct is "
                                              f"{box['dice'].mean():.2f} — LiteMedSAM, {PAIRS - 1} pairs.")
    assert f"{PAIRS - 1} pairs" in _title(out[by_id["dash-where"]])
    assert isinstance(out[by_id["dash-heatmap"]], type(gr.skip()))  # not built while hidden
    table = out[by_id["dash-table"]]["value"]
    assert len(table) == PAIRS - 1
    assert set(table["model"]) == {"LiteMedSAM as published (medical)"} and set(table["strategy"]) == {"box"}
    opened = dict(zip(expand.outputs, expand.fn(*selection, "box")))
    assert f"{PAIRS - 1} pairs" in _title(opened[by_id["dash-heatmap"]])
    assert "No finetuning results yet" in _title(opened[by_id["dash-label-efficiency"]])
    assert "label_efficiency3d.csv is missing" in _title(opened[by_id["dash-label-efficiency-3d"]])
    out = dict(zip(update.outputs, update.fn(True, *selection, "box")))  # open: the figures follow the filters
    assert out[by_id["dash-heatmap"]] is opened[by_id["dash-heatmap"]]  # a selection seen before is not rebuilt
    download = next(f for f in fns if by_id["dash-download"] in f.outputs)
    rows = pd.read_csv(download.fn(*selection))
    assert len(rows) == PAIRS - 1 and set(rows["modality"]) == {"ct"} and "dice_per_click" in rows.columns


def test_project_published_csv_labels_every_mapped_value() -> None:
    published = pd.read_csv(REPO / "results" / "published.csv")
    assert set(d.COLUMNS["published"]) <= set(published.columns)
    mapped = d.published_dice(published)
    assert len(mapped) and mapped["series"].str.startswith("published: ").all()
    assert mapped["dice"].tolist() == pytest.approx((mapped["value"] / 100).tolist())
    assert {"box", "1 point", "5 points", "everything (grid)"} <= set(mapped["prompt"])


def test_report_lists_means_extremes_and_correlations(raw: pd.DataFrame) -> None:
    model = MODELS[0]
    text = d.report(raw, model, top=2)
    rows = raw[raw["model"] == model]
    box = rows[rows["strategy"] == "box"]
    per_pair = box.groupby("mask")["dice"].mean()
    assert f"| box | {len(per_pair)} | {per_pair.mean():.3f} | " in text
    oracle = rows[rows["strategy"] == "points_5pos"].groupby("mask")["dice_oracle"].mean().mean()
    assert f"{oracle:.3f} |" in text.split("| points_5pos |")[1].splitlines()[0]
    targets = box.groupby(["dataset", "object"])["dice"].mean().sort_values()
    best, worst = targets.index[-1], targets.index[0]
    assert f"2 best box targets (dataset / object: mean DICE, pairs): {best[0]} / {best[1]}: " \
           f"{targets.iloc[-1]:.3f}" in text
    assert f"2 worst box targets (dataset / object: mean DICE, pairs): {worst[0]} / {worst[1]}: " in text
    rho = stats.spearmanr(box.groupby("mask")["boundary_complexity"].first()[per_pair.index], per_pair).statistic
    assert f"boundary complexity P²/(4πA): ρ = {rho:.3f}" in text
    assert d.report(raw, "no_such_model") == "No rows for no_such_model."


def test_coverage_note_names_the_split_that_aligns_the_models() -> None:
    rows = make_rows()
    assert d.coverage_note(rows) == ""  # both models on every pair
    # The second model on the test split only, as a finetuned model is (its training pairs excluded).
    partial = rows[(rows["model"] == MODELS[0]) | (rows["split"] == "test")]
    n_test = rows.loc[rows["split"] == "test", "mask"].nunique()
    assert d.coverage_note(partial) == (
        f"The selected models were run on different pairs (LiteMedSAM as published (medical) {len(TARGETS) * PAIRS}, "
        f"SAM ViT-B (zero-shot) {n_test}): "
        "select Splits = test to compare them on the same pairs.")
    assert d.coverage_note(partial[partial["split"] == "test"]) == ""
    # No split puts them on the same pairs: say so instead of suggesting one.
    disjoint = rows[(rows["model"] == MODELS[0]) ^ (rows["dataset"] == "ct_ds")]
    assert d.coverage_note(disjoint).endswith("their means are not directly comparable.")


def test_tab_reads_the_3d_label_efficiency_beside_the_2d_one(folder: Path, tmp_path: Path) -> None:
    (tmp_path / "benchmark.csv").write_bytes((folder / "benchmark.csv").read_bytes())
    label_efficiency3d_rows().to_csv(tmp_path / "label_efficiency3d.csv", index=False)
    with gr.Blocks() as demo:
        build_dashboard_tab(tmp_path)
    by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    expand = next(f for f in demo.fns.values() if by_id["dash-label-efficiency-3d"] in f.outputs)
    assert expand.outputs.index(by_id["dash-label-efficiency-3d"]) == expand.outputs.index(
        by_id["dash-label-efficiency"]) + 1
    opened = dict(zip(expand.outputs, expand.fn(None, None, None, None, "box")))
    assert "Label efficiency in 3D" in _title(opened[by_id["dash-label-efficiency-3d"]])
    assert {t.name for t in opened[by_id["dash-label-efficiency-3d"]].data} >= {"cnn", "unet"}
    assert "No finetuning results yet" in _title(opened[by_id["dash-label-efficiency"]])
