"""Benchmark dashboard: result tables in, plotly figures out (no model runs, no Gradio).

``load_results(folder)`` reads ``benchmark.csv``, ``published.csv``, ``finetune.csv`` and
``label_efficiency.csv`` (each may be missing); ``filter_rows`` selects rows; every ``fig_*``
function is pure and returns a figure whose title carries a one-line caption (what it shows, how
many pairs). An empty selection gives a figure that says there is nothing to show.

DICE is on a 0-1 scale throughout; published percentages are divided by 100 and every published
value sits in a trace named ``published: <source> ...`` (ours: ``ours: ...``). Means over pairs
average each pair's seeds first; error bars and bands are 95% CIs of the mean (mean +- 1.96 SE).
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots
from scipy import stats

log = logging.getLogger(__name__)

STRATEGY_ORDER = ("everything", "point_center", "point_random", "points_5pos", "points_5pos5neg", "box",
                  "box_point", "box_jitter_10", "box_jitter_20", "box_jitter_30", "interactive")
FILTER_COLUMNS = ("model", "modality", "strategy", "split")
PAIR_KEY = ["model", "strategy", "mask"]
BENCHMARK_NUMERIC = ["seed", "n_components", "n_prompted", "dice", "dice_oracle", "iou", "hd95", "nsd",
                     "center_fallback", "jitter_frac", "noc85", "noc90", "n_masks", "boundary_complexity",
                     "intensity_difference", "relative_size", "encode_ms", "decode_ms", "wall_ms"]
COLUMNS = {
    "benchmark": ["model", "dataset", "modality", "object", "image", "mask", "group", "split", "strategy",
                  *BENCHMARK_NUMERIC, "dice_per_click"],
    "published": ["source", "source_ref", "model", "dataset_scope", "modality", "strategy", "metric", "value",
                  "selection", "note"],
    "finetune": ["model", "strategy", "dataset", "modality", "object", "image", "mask", "seed", "dice"],
    "label_efficiency": ["dataset", "head", "k", "k_label", "draw", "class", "n_test", "dice_mean", "dice_std"],
}
# Repeated strings of the (large) benchmark table, stored as categoricals: fast grouping and filtering.
CATEGORICAL = ["model", "dataset", "modality", "object", "image", "mask", "group", "split", "strategy"]
NUMERIC = {"benchmark": BENCHMARK_NUMERIC, "published": ["value"], "finetune": ["seed", "dice"],
           "label_efficiency": ["k", "draw", "n_test", "dice_mean", "dice_std"]}
# Our strategy -> (prompt type shown, the names published tables give that prompt type).
PROMPT_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "everything": ("everything (grid)", ("S1 everything",)),
    "point_center": ("1 point", ("1 point", "S2 1 point")),
    "points_5pos": ("5 points", ("5 points", "S3 5 points")),
    "points_5pos5neg": ("5 pos + 5 neg points", ("S4 5 pos + 5 neg points",)),
    "box": ("box", ("box", "S5 box")),
    "box_point": ("box + 1 point", ("S6 box + 1 point",)),
}
JITTER_LEVELS = {"box": "none", "box_jitter_10": "0-10 px", "box_jitter_20": "10-20 px",
                 "box_jitter_30": "20-30 px"}
# (column, axis title, log axis and fit on log10 x)
DESCRIPTORS = (("boundary_complexity", "boundary complexity P²/(4πA)", True),
               ("intensity_difference", "intensity difference |Δ mean gray|/255", False),
               ("relative_size", "relative size (mask area / image area)", True))
Z95 = 1.959963984540054
NOTHING = "Nothing to show: no rows match the selection."
NO_FINETUNE = "No finetuning results yet: {} is missing or empty."
OURS, PUBLISHED = "ours: ", "published: "
PALETTE = qualitative.Plotly + qualitative.D3
PUBLISHED_PALETTE = qualitative.Pastel1 + qualitative.Pastel2


@dataclass(frozen=True)
class Results:
    """The tables of a results folder; a missing, empty or unreadable file gives an empty table."""

    benchmark: pd.DataFrame
    published: pd.DataFrame
    finetune: pd.DataFrame
    label_efficiency: pd.DataFrame


# --- loading and selecting ------------------------------------------------------------------


def load_results(folder: Path) -> Results:
    """Read the result CSVs of ``folder`` (see ``COLUMNS``); absent columns are added empty."""
    return Results(**{name: _read(Path(folder) / f"{name}.csv", name) for name in COLUMNS})


def _read(path: Path, name: str) -> pd.DataFrame:
    df = pd.DataFrame(columns=COLUMNS[name])
    if path.is_file() and path.stat().st_size:
        data = path.read_bytes()
        if not data.endswith(b"\n"):  # a line being appended right now: leave it out
            data = data[: data.rfind(b"\n") + 1]
        try:
            df = pd.read_csv(io.BytesIO(data), on_bad_lines="skip", low_memory=False)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            log.warning("cannot read %s (%s); showing it as empty", path, exc)
    for column in COLUMNS[name]:
        if column not in df.columns:
            df[column] = np.nan
    for column in NUMERIC[name]:
        df[column] = pd.to_numeric(df[column], errors="coerce")
    if name == "benchmark":
        df[CATEGORICAL] = df[CATEGORICAL].astype("category")
    return df


def filter_rows(df: pd.DataFrame, models: Iterable[str] | None = None, modalities: Iterable[str] | None = None,
                strategies: Iterable[str] | None = None, splits: Iterable[str] | None = None) -> pd.DataFrame:
    """Rows whose model, modality, strategy and split are among those given.

    ``None`` leaves a column unfiltered, an empty list keeps no row; columns the table lacks
    (e.g. ``split`` in finetune.csv) are not filtered on.
    """
    keep = np.ones(len(df), dtype=bool)
    for column, values in zip(FILTER_COLUMNS, (models, modalities, strategies, splits)):
        if values is not None and column in df.columns:
            keep &= df[column].isin(list(values)).to_numpy()
    return df if keep.all() else df[keep]


def choices(df: pd.DataFrame, column: str) -> list[str]:
    """The distinct values of a column, strategies in benchmark order, others sorted."""
    values = [str(v) for v in df[column].dropna().unique()] if column in df.columns else []
    return _strategy_order(values) if column == "strategy" else sorted(values)


def coverage_note(df: pd.DataFrame) -> str:
    """A warning when the selected models were run on different pairs (e.g. a finetuned model on the
    test split only), naming the split(s) that would put them on the same pairs; else ""."""
    if df.empty or df["model"].nunique() < 2:
        return ""
    per_model = df.groupby("model", observed=True)
    pairs = per_model["mask"].agg(lambda s: frozenset(s.unique()))
    if pairs.nunique() == 1:
        return ""
    counts = ", ".join(f"{m} {len(p):,}" for m, p in pairs.items())
    shared = sorted(set.intersection(*per_model["split"].agg(lambda s: set(s.unique().astype(str)))))
    common = df[df["split"].isin(shared)].groupby("model", observed=True)["mask"].agg(lambda s: frozenset(s.unique()))
    how = (f"select Splits = {', '.join(shared)} to compare them on the same pairs"
           if shared and common.nunique() == 1 else "their means are not directly comparable")
    return f"The selected models were run on different pairs ({counts}): {how}."


def pair_means(df: pd.DataFrame, values: Sequence[str] = ("dice",)) -> pd.DataFrame:
    """One row per (model, strategy, pair): ``values`` averaged over seeds, pair columns kept."""
    keep = [c for c in ("dataset", "modality", "object", "split", "image", *(d for d, _, _ in DESCRIPTORS))
            if c in df.columns and c not in values]
    grouped = df.groupby(PAIR_KEY, sort=False, observed=True)
    out = grouped[list(values)].mean()
    out[keep] = grouped[keep].first()
    return out.reset_index()


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, int]:
    """Spearman rho, two-sided p-value and n over the finite (x, y) pairs (NaN when n < 3)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return np.nan, np.nan, int(ok.sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: NaN, shown as such
        res = stats.spearmanr(x[ok], y[ok])
    return float(res.statistic), float(res.pvalue), int(ok.sum())


def partial_spearman(x: Sequence[float], y: Sequence[float], z: Sequence[float]) -> tuple[float, float, int]:
    """Rank partial correlation of x and y controlling for z: the ranks of x and y are each
    residualised on the ranks of z (least squares), then correlated; p from t with n - 3 df."""
    x, y, z = (np.asarray(v, float) for v in (x, y, z))
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
    n = int(ok.sum())
    if n < 4:
        return np.nan, np.nan, n
    rx, ry, rz = (stats.rankdata(v[ok]) for v in (x, y, z))
    design = np.column_stack([np.ones(n), rz])
    res_x = rx - design @ np.linalg.lstsq(design, rx, rcond=None)[0]
    res_y = ry - design @ np.linalg.lstsq(design, ry, rcond=None)[0]
    denom = np.sqrt((res_x @ res_x) * (res_y @ res_y))
    if denom == 0:
        return np.nan, np.nan, n
    r = float(np.clip(res_x @ res_y / denom, -1, 1))
    t = r * np.sqrt((n - 3) / max(1 - r * r, 1e-300))
    return r, float(2 * stats.t.sf(abs(t), n - 3)), n


def rho_text(rho: float, p: float, n: int) -> str:
    """How a correlation appears in titles, e.g. 'ρ = 0.412 (p = 0.0031, n = 57)'."""
    return f"ρ = {rho:.3f} (p = {p:.2g}, n = {n})" if np.isfinite(rho) else f"ρ undefined (n = {n})"


def click_curves(df: pd.DataFrame) -> np.ndarray:
    """The ``dice_per_click`` JSON lists as an (n, clicks) array; a run that stopped early (exact
    mask) keeps its last DICE for the remaining clicks. Rows without a list are left out."""
    lists = [json.loads(v) for v in df["dice_per_click"] if isinstance(v, str) and v.startswith("[")]
    lists = [v for v in lists if v]
    if not lists:
        return np.empty((0, 0))
    width = max(map(len, lists))
    return np.array([v + [v[-1]] * (width - len(v)) for v in lists], dtype=float)


# --- figure helpers -------------------------------------------------------------------------


def empty_figure(title: str, message: str = NOTHING) -> go.Figure:
    """A blank figure with the message in its title and across its middle."""
    fig = go.Figure()
    fig.update_layout(title=_title(title, message), height=240, xaxis_visible=False, yaxis_visible=False,
                      annotations=[dict(text=message, x=0.5, y=0.5, xref="paper", yref="paper",
                                        showarrow=False, font_size=15)])
    return fig


def _title(main: str, caption: str) -> dict:
    """The title with the caption below it in small type ('<br>' in the caption starts a new line)."""
    lines = "".join(f"<br><sup>{line}</sup>" for line in caption.split("<br>"))
    return dict(text=main + lines, x=0.01, xanchor="left", yref="container", y=1, yanchor="top", pad_t=12)


def _layout(fig: go.Figure, title: str, caption: str, height: int, legend_below: bool = False) -> go.Figure:
    legend = dict(groupclick="togglegroup")
    if legend_below:  # long names: below the plot, across its width
        legend |= dict(orientation="h", x=0, xanchor="left", y=-0.06, yanchor="top")
    top = 62 + 18 * caption.count("<br>") + 25 * bool(fig.layout.annotations)  # title, caption, subplot titles
    fig.update_layout(title=_title(title, caption), height=height + 150 * legend_below, legend=legend,
                      margin=dict(t=top, l=60, r=20, b=50 + 150 * legend_below))
    return fig


def _strategy_order(values: Iterable[str]) -> list[str]:
    values = set(values)
    return [s for s in STRATEGY_ORDER if s in values] + sorted(values - set(STRATEGY_ORDER))


def _colour(name: str, names: Sequence[str], palette: Sequence[str] = PALETTE) -> str:
    return palette[list(names).index(name) % len(palette)]


def _summary(df: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    """Per group: mean, 95% CI half-width (1.96 SE; 0 for one value) and count of ``value``."""
    out = df.groupby(by, sort=False, observed=True)[value].agg(["mean", "std", "count"]).reset_index()
    out = out[out["count"] > 0]
    out["ci"] = Z95 * out["std"].fillna(0) / np.sqrt(out["count"])
    return out


def _counts(df: pd.DataFrame, what: str = "pairs") -> str:
    n_models = df["model"].nunique()
    models = f", {n_models} models" if n_models > 1 else f", model {df['model'].iloc[0]}" if n_models else ""
    return f"{df['mask'].nunique():,} {what}, {len(df):,} rows{models}"


def _stats(part: pd.DataFrame, value: str = "DICE", unit: str = "pairs") -> dict:
    """Trace arguments for a mean ± 95% CI series from a ``_summary`` table."""
    return dict(error_y=dict(type="data", array=part["ci"].to_numpy(), thickness=1.2, width=3),
                customdata=np.column_stack([part["ci"], part["count"]]),
                hovertemplate="%{fullData.name}<br>%{x}: " + value + " %{y:.3f} ± %{customdata[0]:.3f}"
                              "<br>n = %{customdata[1]} " + unit + "<extra></extra>")


# --- figures --------------------------------------------------------------------------------


def fig_modality(df: pd.DataFrame) -> go.Figure:
    """Grouped bars: mean DICE by modality for each strategy (one panel per model), 95% CI."""
    title = "DICE by modality and prompt strategy"
    rows = df.dropna(subset=["dice"])
    if rows.empty:
        return empty_figure(title)
    s = _summary(pair_means(rows), ["model", "modality", "strategy"], "dice")
    models, strategies = sorted(s["model"].unique()), _strategy_order(s["strategy"])
    fig = make_subplots(rows=len(models), cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=models if len(models) > 1 else None)
    for i, model in enumerate(models, 1):
        for strategy in strategies:
            part = s[(s["model"] == model) & (s["strategy"] == strategy)].sort_values("modality")
            if len(part):
                fig.add_trace(go.Bar(x=part["modality"], y=part["mean"], name=strategy, legendgroup=strategy,
                                     showlegend=i == 1, marker_color=_colour(strategy, STRATEGY_ORDER),
                                     **_stats(part)),
                              row=i, col=1)
    fig.update_yaxes(title_text="DICE", range=[0, 1.05])
    fig.update_xaxes(categoryorder="category ascending")
    caption = f"bars: mean DICE over pairs, error bars: 95% CI; {_counts(rows)}"
    return _layout(fig, title, caption, 160 + 320 * len(models))


def fig_heatmap(df: pd.DataFrame) -> go.Figure:
    """Heatmap of mean DICE, target (object, modality) by strategy, one panel per model."""
    title = "Mean DICE per target and strategy"
    rows = df.dropna(subset=["dice"])
    if rows.empty:
        return empty_figure(title)
    pairs = pair_means(rows)
    pairs["target"] = pairs["object"].astype(str) + " (" + pairs["modality"].astype(str) + ")"
    s = _summary(pairs, ["model", "target", "strategy"], "dice")
    models, strategies = sorted(s["model"].unique()), _strategy_order(s["strategy"])
    targets = sorted(s["target"].unique(), key=lambda t: (t.rsplit("(", 1)[-1], t))
    fig = make_subplots(rows=1, cols=len(models), shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=models if len(models) > 1 else None)
    for j, model in enumerate(models, 1):
        part = s[s["model"] == model]
        z = part.pivot(index="target", columns="strategy", values="mean").reindex(index=targets, columns=strategies)
        n = part.pivot(index="target", columns="strategy", values="count").reindex(index=targets, columns=strategies)
        fig.add_trace(go.Heatmap(z=z.to_numpy(), x=strategies, y=targets, coloraxis="coloraxis", name=model,
                                 text=z.map(lambda v: "" if pd.isna(v) else f"{v:.2f}").to_numpy(),
                                 texttemplate="%{text}", customdata=n.fillna(0).astype(int).to_numpy(),
                                 hovertemplate="%{y}<br>%{x}: mean DICE %{z:.3f}<br>n = %{customdata} pairs"
                                               "<extra>" + model + "</extra>"),
                      row=1, col=j)
    fig.update_layout(coloraxis=dict(colorscale="Viridis", cmin=0, cmax=1, colorbar_title="DICE"))
    fig.update_yaxes(autorange="reversed")
    caption = f"cells: mean DICE over pairs (seeds averaged); {_counts(rows)}"
    return _layout(fig, title, caption, 200 + 26 * len(targets))


def fig_descriptors(df: pd.DataFrame, strategy: str | None = None) -> go.Figure:
    """DICE of one strategy against boundary complexity, intensity difference and relative size:
    one point per pair coloured by modality, a linear fit (on log10 x for the log axes), Spearman
    rho in each panel's title and, for the first two, the rank partial rho controlling for size."""
    present = _strategy_order(df["strategy"].dropna().unique())
    if strategy not in present:
        strategy = "box" if "box" in present else present[0] if present else None
    title = f"DICE against target descriptors ({strategy or 'no strategy'})"
    rows = df[df["strategy"] == strategy].dropna(subset=["dice"])
    if rows.empty:
        return empty_figure(title)
    pairs = pair_means(rows)
    size = pairs["relative_size"].to_numpy(float)
    titles = []
    for column, _, _ in DESCRIPTORS:
        text = rho_text(*spearman(pairs[column], pairs["dice"]))
        if column != "relative_size":
            text += "<br>partial, size controlled: " + rho_text(*partial_spearman(pairs[column], pairs["dice"], size))
        titles.append(text)
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=0.06)
    modalities = sorted(pairs["modality"].unique())
    for j, (column, label, logx) in enumerate(DESCRIPTORS, 1):
        for modality in modalities:
            part = pairs[pairs["modality"] == modality]
            fig.add_trace(go.Scatter(x=part[column], y=part["dice"], mode="markers", name=modality,
                                     legendgroup=modality, showlegend=j == 1, text=part["object"],
                                     marker=dict(size=5, opacity=0.6, color=_colour(modality, modalities)),
                                     hovertemplate="%{text}<br>x = %{x:.3g}<br>DICE %{y:.3f}"
                                                   "<extra>%{fullData.name}</extra>"),
                          row=1, col=j)
        fit = _linear_fit(pairs[column].to_numpy(float), pairs["dice"].to_numpy(float), logx)
        if fit is not None:
            fig.add_trace(go.Scatter(x=fit[0], y=fit[1], mode="lines", name="linear fit", legendgroup="fit",
                                     showlegend=j == 1, line=dict(color="black", width=2), hoverinfo="skip"),
                          row=1, col=j)
        fig.update_xaxes(title_text=label + (" (log)" if logx else ""), type="log" if logx else "linear", row=1, col=j)
    fig.update_yaxes(title_text="DICE", range=[-0.02, 1.02], row=1, col=1)
    fig.update_annotations(font_size=11)
    caption = (f"one point per pair (seeds averaged); Spearman ρ; partial ρ: ranks residualised on relative size; "
               f"{_counts(rows)}")
    return _layout(fig, title, caption, 520)


def _linear_fit(x: np.ndarray, y: np.ndarray, logx: bool) -> tuple[np.ndarray, np.ndarray] | None:
    ok = np.isfinite(x) & np.isfinite(y) & ((x > 0) if logx else True)
    if ok.sum() < 2 or np.ptp(x[ok]) == 0:
        return None
    u = np.log10(x[ok]) if logx else x[ok]
    slope, intercept = np.polyfit(u, y[ok], 1)
    grid = np.linspace(u.min(), u.max(), 30)
    return (10 ** grid if logx else grid), intercept + slope * grid


def fig_oracle_gap(df: pd.DataFrame) -> go.Figure:
    """Per strategy: DICE of the candidate the model picks (deployable) beside the best of its
    candidates (oracle); the bar text is the mean paired gap. 'everything' has no pick: left out."""
    title = "Oracle vs deployable: best candidate vs the model's pick"
    rows = df[df["strategy"] != "everything"].dropna(subset=["dice", "dice_oracle"])
    if rows.empty:
        return empty_figure(title)
    pairs = pair_means(rows, ("dice", "dice_oracle"))
    pairs["gap"] = pairs["dice_oracle"] - pairs["dice"]
    by = ["model", "strategy"]
    pick, best, gap = (_summary(pairs, by, v).set_index(by) for v in ("dice", "dice_oracle", "gap"))
    models = sorted(pick.index.get_level_values("model").unique())
    fig = make_subplots(rows=len(models), cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=models if len(models) > 1 else None)
    for i, model in enumerate(models, 1):
        strategies = _strategy_order(pick.loc[model].index)
        gaps = gap.loc[model].reindex(strategies)["mean"]
        for label, table, colour, text in (("model's pick (deployable)", pick, "#4c78a8", None),
                                           ("best of candidates (oracle)", best, "#f58518",
                                            [f"gap {v:+.3f}" for v in gaps])):
            part = table.loc[model].reindex(strategies)
            fig.add_trace(go.Bar(x=strategies, y=part["mean"], name=label, legendgroup=label, showlegend=i == 1,
                                 marker_color=colour, text=text, textposition="outside", **_stats(part)),
                          row=i, col=1)
    fig.update_yaxes(title_text="DICE", range=[0, 1.15])
    model, strategy = gap["mean"].idxmax()
    largest = f"{strategy}{f' ({model})' if len(models) > 1 else ''} {gap['mean'].max():+.3f}"
    caption = f"mean over pairs, 95% CI; gap: mean of oracle − pick per pair (largest: {largest}); {_counts(rows)}"
    return _layout(fig, title, caption, 160 + 320 * len(models))


def fig_jitter(df: pd.DataFrame) -> go.Figure:
    """Box-jitter sensitivity: mean DICE per jitter range (by modality and pooled) and mean DICE
    in quantile bins of the relative box shift ``jitter_frac`` with its Spearman rho."""
    title = "Box jitter sensitivity"
    rows = df[df["strategy"].isin(list(JITTER_LEVELS))].dropna(subset=["dice"])
    if rows.empty:
        return empty_figure(title)
    pairs = pair_means(rows)
    pairs["level"] = pairs["strategy"].map(JITTER_LEVELS)
    shifted = rows[(rows["strategy"] != "box") & (rows["jitter_frac"] > 0)]
    rho = rho_text(*spearman(shifted["jitter_frac"], shifted["dice"]))
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08, subplot_titles=(
        "by jitter range of each box edge", f"by relative shift (quantile bins of rows): {rho}"))
    levels = list(JITTER_LEVELS.values())
    modalities = sorted(pairs["modality"].unique())
    by_modality = _summary(pairs, ["modality", "level"], "dice")
    series = [(m, by_modality[by_modality["modality"] == m]) for m in modalities]
    for name, part in [*series, ("all modalities", _summary(pairs, ["level"], "dice"))]:
        part = part.set_index("level").reindex([lv for lv in levels if lv in set(part["level"])]).reset_index()
        pooled = name == "all modalities"
        fig.add_trace(go.Scatter(x=part["level"], y=part["mean"], name=name, mode="lines+markers",
                                 line=dict(color="black" if pooled else _colour(name, modalities),
                                           width=3 if pooled else 1.5), **_stats(part)),
                      row=1, col=1)
    if len(shifted):
        bins = pd.qcut(shifted["jitter_frac"], q=min(8, shifted["jitter_frac"].nunique()), duplicates="drop")
        b = shifted.groupby(bins, observed=True).agg(x=("jitter_frac", "median"), mean=("dice", "mean"),
                                                     std=("dice", "std"), count=("dice", "count"))
        b["ci"] = Z95 * b["std"].fillna(0) / np.sqrt(b["count"])
        fig.add_trace(go.Scatter(x=b["x"], y=b["mean"], mode="lines+markers", name="jittered boxes (bins)",
                                 line_color="black", showlegend=False, **_stats(b, unit="rows")),
                      row=1, col=2)
    fig.update_xaxes(title_text="jitter per box edge", categoryorder="array", categoryarray=levels, row=1, col=1)
    fig.update_xaxes(title_text="mean |edge shift| / box size (bin median, log)", type="log", row=1, col=2)
    fig.update_yaxes(title_text="DICE", row=1, col=1)
    fig.update_annotations(font_size=11)
    caption = f"mean DICE, 95% CI; left: over pairs (seeds averaged), right: over rows; {_counts(rows)}"
    return _layout(fig, title, caption, 470)


def fig_interactive(df: pd.DataFrame) -> go.Figure:
    """Interactive clicks: mean DICE after each click with a 95% CI band (per model) and mean
    NoC@85 / NoC@90 by modality."""
    title = "Interactive clicks"
    rows = df[df["strategy"] == "interactive"]
    rows = rows[rows["dice_per_click"].map(lambda v: isinstance(v, str) and v.startswith("["))]
    if rows.empty:
        return empty_figure(title, "Nothing to show: no interactive rows in the selection.")
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08, column_widths=[0.55, 0.45],
                        subplot_titles=("DICE after each click", "clicks to reach DICE 0.85 / 0.90"))
    models = sorted(rows["model"].unique())
    for model in models:
        curves = click_curves(rows[rows["model"] == model])
        if not curves.size:
            continue
        x = np.arange(1, curves.shape[1] + 1)
        mean = curves.mean(axis=0)
        ci = Z95 * curves.std(axis=0, ddof=1) / np.sqrt(len(curves)) if len(curves) > 1 else np.zeros_like(mean)
        colour = _colour(model, models)
        fig.add_trace(go.Scatter(x=np.r_[x, x[::-1]], y=np.r_[mean + ci, (mean - ci)[::-1]], fill="toself",
                                 line_width=0, fillcolor=colour, opacity=0.2, name=f"{model} 95% CI",
                                 legendgroup=model, showlegend=False, hoverinfo="skip"), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=mean, mode="lines+markers", name=model, legendgroup=model, line_color=colour,
                                 **_stats(pd.DataFrame({"ci": ci, "count": len(curves)}))),
                      row=1, col=1)
    for column, colour in (("noc85", "#72b7b2"), ("noc90", "#54a24b")):
        s = _summary(rows.dropna(subset=[column]), ["modality"], column).sort_values("modality")
        fig.add_trace(go.Bar(x=s["modality"], y=s["mean"], name=f"NoC@{column[3:]}", marker_color=colour,
                             **_stats(s, "clicks")),
                      row=1, col=2)
    fig.update_xaxes(title_text="click", dtick=1, row=1, col=1)
    fig.update_yaxes(title_text="DICE", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="clicks (mean)", row=1, col=2)
    caption = (f"mean over pairs, 95% CI; a run that stopped early (exact mask) keeps its last DICE; NoC is the "
               f"click limit when never reached; mean NoC@85 {rows['noc85'].mean():.2f}, NoC@90 "
               f"{rows['noc90'].mean():.2f}; {_counts(rows)}")
    return _layout(fig, title, caption, 470)


def published_label(row: Mapping) -> str:
    """Legend name of a published series, e.g. 'published: SAM-Med2D README (SA-Med2D-20M test) — SAM (256)'."""
    selection = f", {row['selection']} pick" if isinstance(row["selection"], str) and row["selection"] else ""
    return f"{PUBLISHED}{row['source']} ({row['dataset_scope']}) — {row['model']}{selection}"


def published_dice(published: pd.DataFrame) -> pd.DataFrame:
    """Published DICE rows of a prompt type we run: adds ``prompt`` (our prompt type name),
    ``dice`` (0-1) and ``series`` (the legend name)."""
    alias = {name: label for label, names in PROMPT_TYPES.values() for name in names}
    pub = published[(published["metric"] == "dice") & published["strategy"].isin(list(alias))].dropna(subset=["value"])
    return pub.assign(prompt=pub["strategy"].map(alias), dice=pub["value"] / 100,
                      series=[published_label(r) for r in pub.to_dict("records")])


def fig_published(df: pd.DataFrame, published: pd.DataFrame) -> go.Figure:
    """Our mean DICE (model's pick and oracle pick, 95% CI) beside published DICE for the same
    prompt type (hatched bars named 'published: <source> ...'); below, box prompts by modality.
    Published rows for all modalities ('all', 'ct+mri') go above, per-modality ones below."""
    title = "Ours beside published references, same prompt type"
    rows = df[df["strategy"].isin(list(PROMPT_TYPES))].dropna(subset=["dice"])
    if rows.empty:
        return empty_figure(title, "Nothing to show: no rows of a strategy with published references "
                                   f"({', '.join(PROMPT_TYPES)}) in the selection.")
    pub = published_dice(published)
    pooled = (pub["modality"] == "all") | pub["modality"].astype(str).str.contains("+", regex=False)
    pairs = pair_means(rows, ("dice", "dice_oracle"))
    pairs["prompt"] = pairs["strategy"].map({s: label for s, (label, _) in PROMPT_TYPES.items()}).astype(str)
    pairs.loc[pairs["strategy"] == "everything", "dice"] = np.nan  # its DICE is the best mask's: an oracle pick
    prompts = [label for s, (label, _) in PROMPT_TYPES.items() if s in set(pairs["strategy"])]
    box = pairs[pairs["strategy"] == "box"]
    box_modalities = sorted(box["modality"].unique())
    panels = [(pairs, "prompt", prompts, pub[pooled & pub["prompt"].isin(prompts)])]
    if len(box):
        panels.append((box, "modality", box_modalities,
                       pub[~pooled & (pub["prompt"] == "box") & pub["modality"].isin(box_modalities)]))
    titles = ("all modalities, by prompt type", "box prompt, by modality (published where the modality matches)")
    fig = make_subplots(rows=len(panels), cols=1, vertical_spacing=0.14, subplot_titles=titles[:len(panels)])
    models = sorted(pairs["model"].unique())
    series = list(dict.fromkeys(pub["series"]))
    shown: set[str] = set()
    for row, (data, x, order, refs) in enumerate(panels, 1):
        for model in models:
            for value, pick, opacity in (("dice", "predicted-iou pick", 1.0), ("dice_oracle", "oracle pick", 0.55)):
                s = _summary(data[data["model"] == model], [x], value).set_index(x).reindex(order)
                s = s.dropna(subset=["mean"])
                name = f"{OURS}{model} ({pick})"
                fig.add_trace(go.Bar(x=s.index, y=s["mean"], name=name, legendgroup=name, showlegend=name not in shown,
                                     opacity=opacity, marker_color=_colour(model, models), **_stats(s)),
                              row=row, col=1)
                shown.add(name)
        for name, part in refs.groupby("series", sort=False):
            fig.add_trace(go.Bar(
                x=part[x], y=part["dice"], name=name, legendgroup=name, showlegend=name not in shown,
                marker=dict(color=_colour(name, series, PUBLISHED_PALETTE), pattern_shape="/",
                            line=dict(color="#444", width=1)),
                customdata=np.column_stack([part["value"], part["source_ref"], part["modality"],
                                            part["note"].astype("string").fillna("")]),
                hovertemplate="%{fullData.name}<br>%{x}: DICE %{y:.4f} (published as %{customdata[0]} %)<br>"
                              "modality %{customdata[2]}; source: %{customdata[1]}<br>%{customdata[3]}<extra></extra>"),
                row=row, col=1)
            shown.add(name)
        fig.update_xaxes(categoryorder="array", categoryarray=order, row=row, col=1)
    fig.update_yaxes(title_text="DICE (0-1)", range=[0, 1.05])
    mapping = ", ".join(f"{s} → {label}" for s, (label, _) in PROMPT_TYPES.items() if s in set(pairs["strategy"]))
    caption = (f"solid: ours, mean over pairs, 95% CI ({_counts(rows)}); hatched: published (% / 100; other data "
               f"and models, not our measurements)<br>our strategy → prompt type: {mapping}")
    return _layout(fig, title, caption, 140 + 380 * len(panels), legend_below=True)


def fig_finetune(finetune: pd.DataFrame, published: pd.DataFrame | None = None,
                 modalities: Sequence[str] | None = None, strategies: Sequence[str] | None = None) -> go.Figure:
    """Finetuned minus zero-shot DICE, paired by (strategy, image, mask, seed), mean per target
    with 95% CI; each 'X_ft' model is paired with 'X'. Published mean gains as reference lines.
    ``modalities`` and ``strategies`` select rows as in ``filter_rows``."""
    title = "Finetuned vs zero-shot (paired per target)"
    rows = finetune.dropna(subset=["dice"])
    if rows.empty:
        return empty_figure(title, NO_FINETUNE.format("finetune.csv"))
    rows = filter_rows(rows, None, modalities, strategies)
    key = ["strategy", "image", "mask", "seed"]
    models = set(rows["model"].astype(str))
    deltas = []
    for tuned in sorted(m for m in models if m.endswith("_ft") and m[:-3] in models):
        base = rows[rows["model"] == tuned[:-3]][key + ["modality", "object", "dice"]]
        paired = base.merge(rows[rows["model"] == tuned][key + ["dice"]], on=key, suffixes=("_zs", "_ft"))
        deltas.append(paired.assign(delta=paired["dice_ft"] - paired["dice_zs"],
                                    comparison=f"{tuned} − {tuned[:-3]}"))
    d = pd.concat(deltas) if deltas else pd.DataFrame()
    if d.empty:
        return empty_figure(title, "Nothing to show: no finetuned ('X_ft') and zero-shot ('X') rows pair up "
                                   "by strategy, image, mask and seed.")
    d["target"] = d["object"].astype(str) + " (" + d["modality"].astype(str) + ")"
    per_pair = d.groupby(["comparison", "strategy", "target", "mask"], sort=False)["delta"].mean().reset_index()
    s = _summary(per_pair, ["comparison", "strategy", "target"], "delta")
    targets = sorted(s["target"].unique(), key=lambda t: (t.rsplit("(", 1)[-1], t))
    fig = go.Figure()
    for (comparison, strategy), part in s.groupby(["comparison", "strategy"], sort=False):
        fig.add_trace(go.Bar(y=part["target"], x=part["mean"], orientation="h", name=f"{comparison}: {strategy}",
                             error_x=dict(type="data", array=part["ci"].to_numpy()),
                             customdata=np.column_stack([part["ci"], part["count"]]),
                             marker_color=_colour(strategy, STRATEGY_ORDER),
                             hovertemplate="%{fullData.name}<br>%{y}: ΔDICE %{x:+.3f} ± %{customdata[0]:.3f}"
                                           "<br>n = %{customdata[1]} pairs<extra></extra>"))
    n_series = len(fig.data)
    gains = [] if published is None else published[published["metric"] == "dice_gain_pct"].to_dict("records")
    for g in gains:
        name = f"{published_label(g)}: mean gain {g['value']:g} % (at ΔDICE {g['value'] / 100:g})"
        fig.add_trace(go.Scatter(x=[g["value"] / 100] * 2, y=[targets[0], targets[-1]], mode="lines", name=name,
                                 line=dict(dash="dash", width=1.5), hoverinfo="name"))
    fig.update_yaxes(categoryorder="array", categoryarray=targets[::-1])
    fig.update_xaxes(title_text="ΔDICE, finetuned − zero-shot", zeroline=True, zerolinecolor="#888")
    fig.update_layout(barmode="group")
    caption = (f"mean paired difference over pairs (seeds averaged), 95% CI; dashed: published mean gains (other "
               f"models and data; % read as DICE points); {d['mask'].nunique():,} pairs, {len(d):,} paired rows")
    return _layout(fig, title, caption, 120 + len(targets) * max(30, 14 * n_series), legend_below=True)


def fig_label_efficiency(label_efficiency: pd.DataFrame) -> go.Figure:
    """DICE against labelled examples k (log2 axis) per head, one panel per dataset: the mean over
    draws (classes n_test-weighted within a draw) with a band of +-1 SD over draws."""
    title = "Label efficiency"
    rows = label_efficiency.dropna(subset=["dice_mean", "k"])
    rows = rows[rows["k"] > 0]
    if rows.empty:
        return empty_figure(title, NO_FINETUNE.format("label_efficiency.csv"))
    weight = rows["n_test"].where(rows["n_test"] > 0, 1)
    rows = rows.assign(w=weight, wd=weight * rows["dice_mean"], draw=rows["draw"].fillna(0))
    per_draw = rows.groupby(["dataset", "head", "k", "draw"], sort=False)[["w", "wd"]].sum().reset_index()
    per_draw["dice"] = per_draw["wd"] / per_draw["w"]
    s = per_draw.groupby(["dataset", "head", "k"])["dice"].agg(["mean", "std", "count"]).reset_index()
    s["std"] = s["std"].fillna(0)
    datasets, heads = sorted(s["dataset"].unique()), sorted(s["head"].astype(str).unique())
    cols = min(3, len(datasets))
    n_rows = -(-len(datasets) // cols)
    fig = make_subplots(rows=n_rows, cols=cols, subplot_titles=datasets, vertical_spacing=0.12)
    ticks = sorted(s["k"].unique())
    for i, dataset in enumerate(datasets):
        r, c = divmod(i, cols)
        for head in heads:
            part = s[(s["dataset"] == dataset) & (s["head"].astype(str) == head)].sort_values("k")
            if part.empty:
                continue
            colour = _colour(head, heads)
            x = part["k"].to_numpy()
            band = np.r_[part["mean"] + part["std"], (part["mean"] - part["std"])[::-1]]
            fig.add_trace(go.Scatter(x=np.r_[x, x[::-1]], y=band,
                                     fill="toself", fillcolor=colour, opacity=0.2, line_width=0, legendgroup=head,
                                     showlegend=False, hoverinfo="skip", name=f"{head} ±1 SD"), row=r + 1, col=c + 1)
            fig.add_trace(go.Scatter(x=x, y=part["mean"], mode="lines+markers", name=head, legendgroup=head,
                                     showlegend=i == 0, line_color=colour, customdata=part["count"],
                                     hovertemplate="%{fullData.name}<br>k = %{x}: DICE %{y:.3f}<br>%{customdata} draws"
                                                   "<extra></extra>"), row=r + 1, col=c + 1)
    fig.update_xaxes(type="log", tickvals=ticks, ticktext=[f"{k:g}" for k in ticks], title_text="k (labelled, log2)")
    fig.update_yaxes(title_text="DICE")
    caption = f"mean over draws, band ±1 SD over draws; {len(datasets)} datasets, {len(rows):,} rows"
    return _layout(fig, title, caption, 140 + 330 * n_rows)


def build_figures(results: Results, models: Sequence[str] | None = None, modalities: Sequence[str] | None = None,
                  strategies: Sequence[str] | None = None, splits: Sequence[str] | None = None,
                  descriptor_strategy: str | None = None) -> tuple[pd.DataFrame, dict[str, go.Figure]]:
    """The selected benchmark rows and every dashboard figure, keyed by panel name. The finetuning
    comparison follows the modality and strategy filters only (its models and split are its own)."""
    rows = filter_rows(results.benchmark, models, modalities, strategies, splits)
    return rows, {
        "modality": fig_modality(rows),
        "published": fig_published(rows, results.published),
        "heatmap": fig_heatmap(rows),
        "oracle": fig_oracle_gap(rows),
        "descriptors": fig_descriptors(rows, descriptor_strategy),
        "jitter": fig_jitter(rows),
        "interactive": fig_interactive(rows),
        "finetune": fig_finetune(results.finetune, results.published, modalities, strategies),
        "label-efficiency": fig_label_efficiency(results.label_efficiency),
    }


def report(df: pd.DataFrame, model: str, top: int = 5) -> str:
    """The benchmark in text (for notes and the terminal): mean DICE per strategy with both mask
    selections, the ``top`` best and worst targets (dataset x object) for ``box``, and the Spearman
    correlation of per-pair ``box`` DICE with each target descriptor."""
    rows = df[df["model"] == model]
    if rows.empty:
        return f"No rows for {model}."
    pairs = pair_means(rows, ("dice", "dice_oracle"))
    means = pairs.groupby("strategy", observed=True).agg(
        pairs=("mask", "size"), dice=("dice", "mean"), dice_oracle=("dice_oracle", "mean"))
    means = means.reindex(_strategy_order(means.index)).round(3)
    lines = [f"{model}: {rows['mask'].nunique()} pairs, {len(rows)} rows", "",
             "| strategy | pairs | DICE (top-scored mask) | DICE (oracle mask) |", "|---|---|---|---|"]
    lines += [f"| {s} | {int(r.pairs)} | {r.dice:.3f} | {r.dice_oracle:.3f} |" for s, r in means.iterrows()]
    box = pairs[pairs["strategy"] == "box"]
    if not box.empty:
        targets = (box.groupby(["dataset", "object"], observed=True)["dice"].agg(["mean", "size"])
                   .sort_values("mean", ascending=False).round(3))
        for title, part in (("best", targets.head(top)), ("worst", targets.tail(top).iloc[::-1])):
            lines += ["", f"{top} {title} box targets (dataset / object: mean DICE, pairs): " +
                      "; ".join(f"{d} / {o}: {r['mean']:.3f} ({int(r['size'])})" for (d, o), r in part.iterrows())]
        lines += ["", "Spearman correlation of box DICE with:"]
        lines += [f"- {title}: {rho_text(*spearman(box[col], box['dice']))}"
                  for col, title, _ in DESCRIPTORS if col in box.columns]
    return "\n".join(lines)
