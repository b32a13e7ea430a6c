"""Plotly figures for the Learn tab's live experiments (pure functions of their results)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy import stats

from .experiments import Trial

HEIGHT = 340
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def _layout(fig: go.Figure, title: str, x: str, y: str = "DICE") -> go.Figure:
    fig.update_layout(title={"text": title, "font": {"size": 14}}, height=HEIGHT,
                      margin={"l": 50, "r": 10, "t": 50, "b": 40}, xaxis_title=x, yaxis_title=y, showlegend=True,
                      legend={"orientation": "h", "y": -0.25})
    return fig


def dice_bars(trials: list[Trial], title: str, by: str | None = None) -> go.Figure:
    """One bar per trial (grouped by ``extra[by]`` when given), DICE written on each."""
    frame = pd.DataFrame({"group": [t.group for t in trials], "dice": [t.dice for t in trials],
                          "series": [t.extra.get(by, "") if by else "" for t in trials]})
    fig = go.Figure()
    for i, (series, part) in enumerate(frame.groupby("series", sort=False)):
        fig.add_bar(x=part["group"], y=part["dice"], name=series or "DICE", text=part["dice"].round(2),
                    textposition="outside", marker_color=COLOURS[i % len(COLOURS)])
    fig.update_yaxes(range=[0, 1.1])
    fig.update_layout(barmode="group")
    return _layout(fig, title, "")


def strip(trials: list[Trial], title: str) -> go.Figure:
    """Every trial as a dot in its group (jittered sideways), with each group's median."""
    frame = pd.DataFrame({"group": [t.group for t in trials], "dice": [t.dice for t in trials]})
    order = list(dict.fromkeys(frame["group"]))
    rng = np.random.default_rng(0)
    fig = go.Figure()
    for i, group in enumerate(order):
        values = frame.loc[frame["group"] == group, "dice"].to_numpy()
        fig.add_scatter(x=i + rng.uniform(-0.15, 0.15, len(values)), y=values, mode="markers", name=group,
                        marker={"size": 9, "color": COLOURS[i % len(COLOURS)], "opacity": 0.8},
                        hovertemplate=f"{group}<br>DICE %{{y:.3f}}<extra></extra>")
        fig.add_scatter(x=[i - 0.3, i + 0.3], y=[np.median(values)] * 2, mode="lines", showlegend=False,
                        line={"color": "#333", "width": 2}, hoverinfo="skip")
    fig.update_xaxes(tickvals=list(range(len(order))), ticktext=order)
    fig.update_yaxes(range=[-0.05, 1.05])
    return _layout(fig, title, "")


def click_curves(runs: dict[str, list[float]], title: str) -> go.Figure:
    """DICE after each click, one line per model, with the 0.85 and 0.90 lines of NoC@85/90."""
    fig = go.Figure()
    for i, (name, scores) in enumerate(runs.items()):
        fig.add_scatter(x=list(range(1, len(scores) + 1)), y=scores, mode="lines+markers", name=name,
                        line={"color": COLOURS[i % len(COLOURS)]})
    for level in (0.85, 0.90):
        fig.add_hline(y=level, line={"dash": "dot", "color": "#888"}, annotation_text=f"{level:.2f}")
    fig.update_yaxes(range=[0, 1.02])
    return _layout(fig, title, "clicks")


def on_scatter(rows: pd.DataFrame, x: str, point: dict[str, float], title: str) -> go.Figure:
    """The benchmark's pairs (DICE against descriptor ``x``) with this target as a star; rho in the title."""
    rows = rows.dropna(subset=[x, "dice"])
    rho = stats.spearmanr(rows[x], rows["dice"]).statistic if len(rows) >= 3 else float("nan")
    fig = go.Figure()
    fig.add_scatter(x=rows[x], y=rows["dice"], mode="markers", name=f"benchmark pairs (n = {len(rows)})",
                    marker={"size": 5, "color": "#9aa", "opacity": 0.5},
                    hovertemplate="%{text}<br>DICE %{y:.3f}<extra></extra>", text=rows["object"])
    fig.add_scatter(x=[point[x]], y=[point["dice"]], mode="markers", name="this target",
                    marker={"size": 18, "symbol": "star", "color": "#d62728", "line": {"width": 1, "color": "#000"}})
    fig.update_yaxes(range=[-0.05, 1.05])
    return _layout(fig, f"{title} (Spearman's rho {rho:+.2f})", x.replace("_", " "))


def iou_scatter(trials: list[Trial], title: str) -> go.Figure:
    """Predicted against true IoU of each candidate; on the diagonal the model knows its quality."""
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect self-assessment",
                    line={"dash": "dot", "color": "#888"}, hoverinfo="skip")
    for i, t in enumerate(trials):
        fig.add_scatter(x=[t.extra["predicted_iou"]], y=[t.extra["true_iou"]], mode="markers+text", name=t.group,
                        text=[t.group.split()[-1]], textposition="top center",
                        marker={"size": 14, "color": COLOURS[i % len(COLOURS)]})
    fig.update_xaxes(range=[0, 1.05])
    fig.update_yaxes(range=[0, 1.05])
    return _layout(fig, title, "predicted IoU (what the model says)", "true IoU (against the ground truth)")
