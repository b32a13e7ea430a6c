"""The compact figures of the four question panels (see ``answers``), sized for a panel 310-600 px
wide: horizontal bars with wrapped labels, plots stacked rather than side by side, legends below,
models as colours in the order ``names.model_order`` gives (the order of the numbers in the
answers). Published numbers are hatched bars in a series named ``published: ...``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .data import DESCRIPTORS
from .names import STRATEGY_GROUP, model_label, model_short, strategy_name
from .stats import binned_means
from .style import OURS, PUBLISHED, PUBLISHED_PALETTE, broken, ci_args, colour_of, empty_figure, layout

# Descriptor column -> its name in a plot title (the axis gives its definition).
FAILURE_DESCRIPTORS = {"boundary_complexity": "boundary complexity", "intensity_difference": "intensity difference"}
LEGEND_CHARS, TICK_CHARS = 44, 24
BAR_PX = 12  # per bar of a group; groups get 12 px more


def _legend_px(entries: int) -> int:
    """Room below the x axis title for a legend of two-line entries, one under the other."""
    return 16 + 34 * entries


def _model_bars(fig: go.Figure, part: pd.DataFrame, category: str, model: str, models: list[str],
                raw: list[str], **where: object) -> None:
    """One model's horizontal mean ± CI bars over ``category``. Add the models last first: plotly
    stacks a group's bars upwards from the first trace, and the legend is then reversed to match."""
    fig.add_trace(go.Bar(y=part[category], x=part["mean"], orientation="h",
                         name=broken(model_label(model), LEGEND_CHARS), legendgroup=model,
                         marker_color=colour_of(model, models), **ci_args(part, raw=raw, horizontal=True)), **where)


def fig_where(s: pd.DataFrame, models: list[str], order: list[str], strategy: str, pairs_said: str) -> go.Figure:
    """Mean DICE by modality (best first) for one strategy, a bar per model."""
    fig = go.Figure()
    for model in models[::-1]:
        part = s[s["model"] == model].set_index("modality").reindex(order).dropna(subset=["mean"]).reset_index()
        _model_bars(fig, part, "modality", model, models, [strategy] * len(part))
    fig.update_yaxes(categoryorder="array", categoryarray=order[::-1])
    fig.update_xaxes(title_text="mean DICE", range=[0, 1])
    fig.update_layout(barmode="group", bargap=0.2, legend_traceorder="reversed")
    caption = f"prompt: {strategy_name(strategy)}; mean over pairs, 95% CI; {pairs_said}"
    return layout(fig, "Mean DICE by modality", caption, len(order) * (BAR_PX + BAR_PX * len(models)),
                  legend_below=True, legend_px=_legend_px(len(models)))


def fig_prompt(s: pd.DataFrame, models: list[str], present: list[str], pairs_said: str) -> go.Figure:
    """Mean DICE per strategy, one plot per group (a box, clicks, no prompt), a bar per model."""
    groups = list(dict.fromkeys(STRATEGY_GROUP.get(st, "other") for st in present))
    members = {g: [st for st in present if STRATEGY_GROUP.get(st, "other") == g] for g in groups}
    fig = make_subplots(rows=len(groups), cols=1, shared_xaxes=True, vertical_spacing=0.2 / len(groups),
                        row_heights=[len(members[g]) for g in groups], subplot_titles=groups)
    for row, group in enumerate(groups, 1):
        ticks = [broken(strategy_name(st), TICK_CHARS) for st in members[group]]
        for model in models[::-1]:
            part = s[s["model"] == model].set_index("strategy").reindex(members[group])
            part = part.assign(tick=ticks).dropna(subset=["mean"])
            _model_bars(fig, part, "tick", model, models, list(part.index), row=row, col=1)
            fig.data[-1].showlegend = row == 1
        fig.update_yaxes(categoryorder="array", categoryarray=ticks[::-1], row=row, col=1)
    fig.update_xaxes(range=[0, 1])
    fig.update_xaxes(title_text="mean DICE", row=len(groups), col=1)
    fig.update_layout(barmode="group", bargap=0.2, legend_traceorder="reversed")
    fig.update_annotations(font_size=12, x=0, xanchor="left")
    caption = (f"mean over pairs, 95% CI; automatic: the best of its masks; {pairs_said}"
               if "everything" in present else f"mean over pairs, 95% CI; {pairs_said}")
    height = len(present) * (BAR_PX + BAR_PX * len(models)) + 30 * len(groups)
    return layout(fig, "Mean DICE by prompt", caption, height, legend_below=True, legend_px=_legend_px(len(models)))


def fig_failure(pairs: pd.DataFrame, models: list[str], rhos: dict[str, list[float]], strategy: str,
                pairs_said: str) -> go.Figure:
    """DICE against boundary complexity and against intensity difference (one plot each): a faint
    point per pair and the mean DICE in quantile bins, coloured by model; Spearman rho per model in
    each plot's title."""
    axes = {column: (label, logx) for column, label, logx in DESCRIPTORS}
    titles = [broken(f"{name}: Spearman ρ = " + ", ".join(f"{rho:.2f} ({model_short(m)})".replace("-", "−")
                                                          for m, rho in zip(models, rhos[column])), 52)
              for column, name in FAILURE_DESCRIPTORS.items()]
    fig = make_subplots(rows=2, cols=1, vertical_spacing=0.24, subplot_titles=titles)
    for row, column in enumerate(FAILURE_DESCRIPTORS, 1):
        label, logx = axes[column]
        for model in models:
            mine = pairs[pairs["model"] == model]
            colour = colour_of(model, models)
            fig.add_trace(go.Scatter(x=mine[column], y=mine["dice"], mode="markers", legendgroup=model,
                                     showlegend=False, name=model_label(model), text=mine["object"].astype(str),
                                     marker=dict(size=4, opacity=0.3, color=colour),
                                     hovertemplate="%{text}<br>x = %{x:.3g}, DICE %{y:.3f}<extra>%{fullData.name}"
                                                   "</extra>"), row=row, col=1)
            x, y = binned_means(mine[column].to_numpy(float), mine["dice"].to_numpy(float))
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", legendgroup=model, showlegend=row == 1,
                                     name=broken(model_label(model), LEGEND_CHARS), line=dict(color=colour, width=3),
                                     hovertemplate="bin median x = %{x:.3g}: mean DICE %{y:.3f}<extra>"
                                                   "%{fullData.name}</extra>"), row=row, col=1)
        fig.update_xaxes(title_text=label + (" (log)" if logx else ""), type="log" if logx else "linear",
                         row=row, col=1)
        fig.update_yaxes(title_text="DICE", range=[-0.02, 1.02], row=row, col=1)
    fig.update_annotations(font_size=12, x=0, xanchor="left")
    caption = (f"prompt: {strategy_name(strategy)}; dots: pairs, lines: mean DICE in 8 equal-count bins; "
               f"{pairs_said}")
    return layout(fig, "DICE vs what makes it hard", caption, 520, legend_below=True,
                  legend_px=_legend_px(len(models)))


def fig_finetuning(deltas: pd.DataFrame, gains: pd.DataFrame, models: list[str]) -> go.Figure:
    """Our paired ΔDICE per strategy (finetuned − the model it starts from, 95% CI) above the
    published mean gains from finetuning (hatched)."""
    title = "Gain from finetuning (ΔDICE)"
    if deltas.empty and gains.empty:
        return empty_figure(title, "No finetuned model with its base model in the selection, and no published gains.")
    fig = go.Figure()
    order = []
    for comparison, part in deltas.groupby("comparison", sort=False):
        part = part.assign(tick=[broken(strategy_name(s), TICK_CHARS) for s in part["strategy"]])
        order += [t for t in part["tick"] if t not in order]
        fig.add_trace(go.Bar(y=part["tick"], x=part["mean"], orientation="h",
                             name=broken(OURS + comparison, LEGEND_CHARS), marker_color=colour_of(
                                 part["tuned"].iloc[0], models), **ci_args(part, "ΔDICE", raw=list(part["strategy"]),
                                                                           horizontal=True)))
    for source, part in gains.groupby("source", sort=False):
        ticks = [broken(f"{PUBLISHED}{m}", TICK_CHARS) for m in part["model"]]
        order += ticks
        fig.add_trace(go.Bar(
            y=ticks, x=part["value"] / 100, orientation="h", name=broken(f"{PUBLISHED}{source}", LEGEND_CHARS),
            marker=dict(color=PUBLISHED_PALETTE[0], pattern_shape="/", line=dict(color="#444", width=1)),
            customdata=np.column_stack([part["value"], part["source_ref"], part["note"].astype("string").fillna("")]),
            hovertemplate="%{fullData.name}<br>%{y}: +%{customdata[0]} % (drawn at ΔDICE %{x:.4f})<br>"
                          "source: %{customdata[1]}<br>%{customdata[2]}<extra></extra>"))
    fig.update_yaxes(categoryorder="array", categoryarray=order[::-1])
    fig.update_xaxes(title_text="ΔDICE: finetuned − starting model", zeroline=True, zerolinecolor="#444",
                     zerolinewidth=1.5)
    caption = ("ours: mean paired difference over the same pairs, 95% CI; hatched: published mean gains "
               "(other models and data; % read as DICE points)")
    return layout(fig, title, caption, len(order) * 3 * BAR_PX, legend_below=True,
                  legend_px=_legend_px(len(fig.data)))

