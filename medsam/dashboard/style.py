"""How dashboard figures look: titles with captions, margins, colours, error bars, empty figures.

A figure's title is a short main line with a caption below it in small type; ``<br>`` in a caption
starts a new line, and long lines are wrapped (``TITLE_CHARS``, ``CAPTION_CHARS``) so that a title
fits a figure 310 px wide (on a phone): plotly does not wrap titles itself, it cuts them. Series
measured here are named ``ours: ...``, published ones ``published: ...``; strategies and models are
shown by the names of ``names``, with the benchmark's strategy name in the hover.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from .names import model_label

NOTHING = "Nothing to show: no rows match the selection."
OURS, PUBLISHED = "ours: ", "published: "
PALETTE = qualitative.Plotly + qualitative.D3
PUBLISHED_PALETTE = qualitative.Pastel1 + qualitative.Pastel2
TITLE_CHARS, CAPTION_CHARS = 30, 50  # characters per line of a title (17 px) and a caption (12 px)
TITLE_LINE_PX, CAPTION_LINE_PX = 24, 17
LEGEND_GAP_PX = 52  # from the plot's bottom edge to a legend below it: tick labels and the x axis title


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters ('<br>' also breaks; a longer word stays whole)."""
    return [line for part in text.split("<br>") for line in textwrap.wrap(part, width) or [""]]


def broken(text: str, width: int) -> str:
    """``text`` wrapped with '<br>' (plotly's line break) for a legend entry or an axis label."""
    return "<br>".join(wrap(text, width))


def empty_figure(title: str, message: str = NOTHING) -> go.Figure:
    """A blank figure with the message in its title and across its middle."""
    fig = go.Figure()
    top = top_margin(title, message)
    fig.update_layout(title=title_dict(title, message), height=top + 200, xaxis_visible=False, yaxis_visible=False,
                      margin=dict(t=top),
                      annotations=[dict(text="<br>".join(wrap(message, 40)), x=0.5, y=0.5, xref="paper",
                                        yref="paper", showarrow=False, font_size=14)])
    return fig


def title_dict(main: str, caption: str) -> dict:
    """The title, wrapped, with the caption below it in small type."""
    lines = wrap(main, TITLE_CHARS) + [f"<sup>{line}</sup>" for line in wrap(caption, CAPTION_CHARS)]
    return dict(text="<br>".join(lines), x=0.01, xanchor="left", yref="container", y=1, yanchor="top", pad_t=16)


def top_margin(main: str, caption: str, subplot_titles: int = 0) -> int:
    """Pixels above the plot for the wrapped title and caption and ``subplot_titles`` lines above it."""
    return (20 + TITLE_LINE_PX * len(wrap(main, TITLE_CHARS)) + CAPTION_LINE_PX * len(wrap(caption, CAPTION_CHARS))
            + 18 * subplot_titles)


def layout(fig: go.Figure, title: str, caption: str, height: int, legend_below: bool = False,
           legend_px: int = 150) -> go.Figure:
    """Title, caption and margins: ``height`` is the plotting area's, the title, the axes and the
    legend get their room around it; a legend below the plot (for long names) gets ``legend_px``."""
    legend = dict(groupclick="togglegroup")
    if legend_below:  # long names: below the plot and its x axis title, across its width. Placed in plot
        # coordinates: a legend placed on the whole figure (yref "container") leaves its margin behind in
        # plotly.js when the next figure drawn there has none, and an empty figure then fails to draw.
        legend |= dict(orientation="h", x=0, xanchor="left", y=-LEGEND_GAP_PX / height, yanchor="top")
    subplot_titles = max((a.text.count("<br>") + 1 for a in fig.layout.annotations), default=0)
    top = top_margin(title, caption, subplot_titles)
    bottom = 50 + legend_px * legend_below
    fig.update_layout(title=title_dict(title, caption), height=height + top + bottom, legend=legend,
                      margin=dict(t=top, l=60, r=20, b=bottom))
    return fig


def colour_of(name: str, names: Sequence[str], palette: Sequence[str] = PALETTE) -> str:
    return palette[list(names).index(name) % len(palette)]


def counts(df: pd.DataFrame, what: str = "pairs") -> str:
    n_models = df["model"].nunique()
    models = f", {n_models} models" if n_models > 1 else f", {model_label(df['model'].iloc[0])}" if n_models else ""
    return f"{df['mask'].nunique():,} {what}, {len(df):,} rows{models}"


def ci_args(part: pd.DataFrame, value: str = "DICE", unit: str = "pairs", raw: Sequence[str] | None = None,
            horizontal: bool = False) -> dict:
    """Trace arguments for a mean ± 95% CI series from a ``stats.summary`` table; ``raw`` gives each
    point's benchmark strategy name for the hover; ``horizontal`` for bars along x."""
    category, mean = ("y", "x") if horizontal else ("x", "y")
    hover = "%{fullData.name}<br>%{" + category + "}: " + value + " %{" + mean + ":.3f} ± %{customdata[0]:.3f}"
    hover += "<br>n = %{customdata[1]} " + unit + ("<br>benchmark name: %{customdata[2]}" if raw is not None else "")
    columns = [part["ci"].to_numpy(), part["count"].to_numpy()]
    if raw is not None:
        columns = [c.astype(object) for c in columns] + [np.asarray(raw, dtype=object)]
    return {f"error_{mean}": dict(type="data", array=part["ci"].to_numpy(), thickness=1.2, width=3),
            "customdata": np.column_stack(columns), "hovertemplate": hover + "<extra></extra>"}
