"""Benchmark figures: DICE by modality, per target, against target descriptors, oracle gap, box
jitter and interactive clicks; each a pure function of benchmark rows (see the package docstring).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .data import DESCRIPTORS, click_curves, pair_means, strategy_order
from .names import STRATEGY_ORDER, model_label, model_order, strategy_name
from .stats import Z95, linear_fit, partial_spearman, rho_text, spearman, summary
from .style import ci_args, colour_of, counts, empty_figure, layout, wrap

JITTER_LEVELS = {"box": "none", "box_jitter_10": "0-10 px", "box_jitter_20": "10-20 px",
                 "box_jitter_30": "20-30 px"}
JITTERED = {level: strategy for strategy, level in JITTER_LEVELS.items()}


def fig_modality(df: pd.DataFrame) -> go.Figure:
    """Grouped bars: mean DICE by modality for each strategy (one panel per model), 95% CI."""
    title = "DICE by modality and prompt strategy"
    rows = df.dropna(subset=["dice"])
    if rows.empty:
        return empty_figure(title)
    s = summary(pair_means(rows), ["model", "modality", "strategy"], "dice")
    models, strategies = model_order(s["model"].unique()), strategy_order(s["strategy"])
    fig = make_subplots(rows=len(models), cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=[model_label(m) for m in models])
    for i, model in enumerate(models, 1):
        for strategy in strategies:
            part = s[(s["model"] == model) & (s["strategy"] == strategy)].sort_values("modality")
            if len(part):
                name = strategy_name(strategy)
                fig.add_trace(go.Bar(x=part["modality"], y=part["mean"], name=name, legendgroup=name,
                                     showlegend=i == 1, marker_color=colour_of(strategy, STRATEGY_ORDER),
                                     **ci_args(part, raw=[strategy] * len(part))),
                              row=i, col=1)
    fig.update_yaxes(title_text="DICE", range=[0, 1.05])
    fig.update_xaxes(categoryorder="category ascending")
    caption = f"bars: mean DICE over pairs, error bars: 95% CI; {counts(rows)}"
    return layout(fig, title, caption, 50 + 320 * len(models))


def fig_heatmap(df: pd.DataFrame) -> go.Figure:
    """Heatmap of mean DICE, target (object, modality) by strategy, one panel per model."""
    title = "Mean DICE per target and strategy"
    rows = df.dropna(subset=["dice"])
    if rows.empty:
        return empty_figure(title)
    pairs = pair_means(rows)
    pairs["target"] = pairs["object"].astype(str) + " (" + pairs["modality"].astype(str) + ")"
    s = summary(pairs, ["model", "target", "strategy"], "dice")
    models, strategies = model_order(s["model"].unique()), strategy_order(s["strategy"])
    targets = sorted(s["target"].unique(), key=lambda t: (t.rsplit("(", 1)[-1], t))
    fig = make_subplots(rows=1, cols=len(models), shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=["<br>".join(wrap(model_label(m), 40)) for m in models])
    names = [strategy_name(st) for st in strategies]
    for j, model in enumerate(models, 1):
        part = s[s["model"] == model]
        z = part.pivot(index="target", columns="strategy", values="mean").reindex(index=targets, columns=strategies)
        n = part.pivot(index="target", columns="strategy", values="count").reindex(index=targets, columns=strategies)
        raw = np.broadcast_to(np.array(strategies, dtype=object), z.shape)
        fig.add_trace(go.Heatmap(z=z.to_numpy(), x=names, y=targets, coloraxis="coloraxis", name=model_label(model),
                                 text=z.map(lambda v: "" if pd.isna(v) else f"{v:.2f}").to_numpy(),
                                 texttemplate="%{text}",
                                 customdata=np.dstack([n.fillna(0).astype(int).to_numpy(object), raw]),
                                 hovertemplate="%{y}<br>%{x}: mean DICE %{z:.3f}<br>n = %{customdata[0]} pairs"
                                               "<br>benchmark name: %{customdata[1]}<extra>%{fullData.name}</extra>"),
                      row=1, col=j)
    fig.update_layout(coloraxis=dict(colorscale="Viridis", cmin=0, cmax=1, colorbar_title="DICE"))
    fig.update_yaxes(autorange="reversed")
    caption = f"cells: mean DICE over pairs (seeds averaged); {counts(rows)}"
    return layout(fig, title, caption, 130 + 26 * len(targets))


def fig_descriptors(df: pd.DataFrame, strategy: str | None = None) -> go.Figure:
    """DICE of one strategy against boundary complexity, intensity difference and relative size, one
    row per model: one point per pair coloured by modality, a linear fit (on log10 x for the log
    axes), Spearman rho in each panel's title and, for the first two, the rank partial rho
    controlling for size."""
    present = strategy_order(df["strategy"].dropna().unique())
    if strategy not in present:
        strategy = "box" if "box" in present else present[0] if present else None
    title = f"DICE against target descriptors ({strategy_name(strategy) if strategy else 'no strategy'})"
    rows = df[df["strategy"] == strategy].dropna(subset=["dice"])
    if rows.empty:
        return empty_figure(title)
    pairs = pair_means(rows)
    models = model_order(pairs["model"].unique())
    titles = [_rho_titles(pairs[pairs["model"] == model]) for model in models]
    fig = make_subplots(rows=len(models), cols=3, subplot_titles=sum(titles, []), horizontal_spacing=0.06,
                        vertical_spacing=0.3 / len(models))
    modalities = sorted(pairs["modality"].unique())
    for i, model in enumerate(models, 1):
        mine = pairs[pairs["model"] == model]
        for j, (column, label, logx) in enumerate(DESCRIPTORS, 1):
            for modality in modalities:
                part = mine[mine["modality"] == modality]
                fig.add_trace(go.Scatter(x=part[column], y=part["dice"], mode="markers", name=modality,
                                         legendgroup=modality, showlegend=i == j == 1, text=part["object"],
                                         marker=dict(size=5, opacity=0.6, color=colour_of(modality, modalities)),
                                         hovertemplate="%{text}<br>x = %{x:.3g}<br>DICE %{y:.3f}"
                                                       f"<extra>%{{fullData.name}}, {model_label(model)}</extra>"),
                              row=i, col=j)
            fit = linear_fit(mine[column].to_numpy(float), mine["dice"].to_numpy(float), logx)
            if fit is not None:
                fig.add_trace(go.Scatter(x=fit[0], y=fit[1], mode="lines", name="linear fit", legendgroup="fit",
                                         showlegend=i == j == 1, line=dict(color="black", width=2),
                                         hoverinfo="skip"), row=i, col=j)
            fig.update_xaxes(title_text=label + (" (log)" if logx else "") if i == len(models) else None,
                             type="log" if logx else "linear", row=i, col=j)
        fig.update_yaxes(title_text="<br>".join(wrap(model_label(model), 28)) + "<br>DICE", range=[-0.02, 1.02],
                         row=i, col=1)
    fig.update_annotations(font_size=11)
    caption = (f"one row per model, one point per pair (seeds averaged); Spearman ρ; partial ρ: ranks residualised "
               f"on relative size; {counts(rows)}")
    fig = layout(fig, title, caption, 360 * len(models))
    fig.update_layout(margin_l=110)
    return fig


def _rho_titles(pairs: pd.DataFrame) -> list[str]:
    """Spearman rho of DICE with each descriptor (and the partial rho, size controlled, for the first two)."""
    size = pairs["relative_size"].to_numpy(float)
    titles = []
    for column, _, _ in DESCRIPTORS:
        text = rho_text(*spearman(pairs[column], pairs["dice"]))
        if column != "relative_size":
            text += "<br>partial, size controlled: " + rho_text(*partial_spearman(pairs[column], pairs["dice"], size))
        titles.append(text)
    return titles


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
    pick, best, gap = (summary(pairs, by, v).set_index(by) for v in ("dice", "dice_oracle", "gap"))
    models = model_order(pick.index.get_level_values("model").unique())
    fig = make_subplots(rows=len(models), cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=[model_label(m) for m in models])
    for i, model in enumerate(models, 1):
        strategies = strategy_order(pick.loc[model].index)
        gaps = gap.loc[model].reindex(strategies)["mean"]
        for label, table, colour, text in (("model's pick (deployable)", pick, "#4c78a8", None),
                                           ("best of candidates (oracle)", best, "#f58518",
                                            [f"gap {v:+.3f}" for v in gaps])):
            part = table.loc[model].reindex(strategies)
            fig.add_trace(go.Bar(x=[strategy_name(s) for s in strategies], y=part["mean"], name=label,
                                 legendgroup=label, showlegend=i == 1, marker_color=colour, text=text,
                                 textposition="outside", **ci_args(part, raw=strategies)),
                          row=i, col=1)
    fig.update_yaxes(title_text="DICE", range=[0, 1.15])
    model, strategy = gap["mean"].idxmax()
    whose = f" ({model_label(model)})" if len(models) > 1 else ""
    largest = f"{strategy_name(strategy)}{whose} {gap['mean'].max():+.3f}"
    caption = f"mean over pairs, 95% CI; gap: mean of oracle − pick per pair (largest: {largest}); {counts(rows)}"
    return layout(fig, title, caption, 50 + 320 * len(models))


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
    by_modality = summary(pairs, ["modality", "level"], "dice")
    series = [(m, by_modality[by_modality["modality"] == m]) for m in modalities]
    for name, part in [*series, ("all modalities", summary(pairs, ["level"], "dice"))]:
        part = part.set_index("level").reindex([lv for lv in levels if lv in set(part["level"])]).reset_index()
        pooled = name == "all modalities"
        fig.add_trace(go.Scatter(x=part["level"], y=part["mean"], name=name, mode="lines+markers",
                                 line=dict(color="black" if pooled else colour_of(name, modalities),
                                           width=3 if pooled else 1.5),
                                 **ci_args(part, raw=[JITTERED[level] for level in part["level"]])),
                      row=1, col=1)
    if len(shifted):
        bins = pd.qcut(shifted["jitter_frac"], q=min(8, shifted["jitter_frac"].nunique()), duplicates="drop")
        b = shifted.groupby(bins, observed=True).agg(x=("jitter_frac", "median"), mean=("dice", "mean"),
                                                     std=("dice", "std"), count=("dice", "count"))
        b["ci"] = Z95 * b["std"].fillna(0) / np.sqrt(b["count"])
        fig.add_trace(go.Scatter(x=b["x"], y=b["mean"], mode="lines+markers", name="jittered boxes (bins)",
                                 line_color="black", showlegend=False, **ci_args(b, unit="rows")),
                      row=1, col=2)
    fig.update_xaxes(title_text="jitter per box edge", categoryorder="array", categoryarray=levels, row=1, col=1)
    fig.update_xaxes(title_text="mean |edge shift| / box size (bin median, log)", type="log", row=1, col=2)
    fig.update_yaxes(title_text="DICE", row=1, col=1)
    fig.update_annotations(font_size=11)
    caption = f"mean DICE, 95% CI; left: over pairs (seeds averaged), right: over rows; {counts(rows)}"
    return layout(fig, title, caption, 360)


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
    models = model_order(rows["model"].unique())
    for model in models:
        curves = click_curves(rows[rows["model"] == model])
        if not curves.size:
            continue
        x = np.arange(1, curves.shape[1] + 1)
        mean = curves.mean(axis=0)
        ci = Z95 * curves.std(axis=0, ddof=1) / np.sqrt(len(curves)) if len(curves) > 1 else np.zeros_like(mean)
        colour = colour_of(model, models)
        fig.add_trace(go.Scatter(x=np.r_[x, x[::-1]], y=np.r_[mean + ci, (mean - ci)[::-1]], fill="toself",
                                 line_width=0, fillcolor=colour, opacity=0.2, name=f"{model_label(model)} 95% CI",
                                 legendgroup=model, showlegend=False, hoverinfo="skip"), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=mean, mode="lines+markers", name=model_label(model), legendgroup=model,
                                 line_color=colour,
                                 **ci_args(pd.DataFrame({"ci": ci, "count": len(curves)}))),
                      row=1, col=1)
    for column, colour in (("noc85", "#72b7b2"), ("noc90", "#54a24b")):
        s = summary(rows.dropna(subset=[column]), ["modality"], column).sort_values("modality")
        fig.add_trace(go.Bar(x=s["modality"], y=s["mean"], name=f"NoC@{column[3:]}", marker_color=colour,
                             **ci_args(s, "clicks")),
                      row=1, col=2)
    fig.update_xaxes(title_text="click", dtick=1, row=1, col=1)
    fig.update_yaxes(title_text="DICE", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="clicks (mean)", row=1, col=2)
    caption = (f"mean over pairs, 95% CI; a run that stopped early (exact mask) keeps its last DICE; NoC is the "
               f"click limit when never reached; mean NoC@85 {rows['noc85'].mean():.2f}, NoC@90 "
               f"{rows['noc90'].mean():.2f}; {counts(rows)}")
    return layout(fig, title, caption, 360, legend_below=True, legend_px=90)

