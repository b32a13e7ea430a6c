"""How dashboard figures look: titles with captions, margins, colours, error bars, empty figures.

A figure's title is a short main line with a caption below it in small type; ``<br>`` in a caption
starts a new line. Series measured here are named ``ours: ...``, published ones ``published: ...``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

NOTHING = "Nothing to show: no rows match the selection."
OURS, PUBLISHED = "ours: ", "published: "
PALETTE = qualitative.Plotly + qualitative.D3
PUBLISHED_PALETTE = qualitative.Pastel1 + qualitative.Pastel2


def empty_figure(title: str, message: str = NOTHING) -> go.Figure:
    """A blank figure with the message in its title and across its middle."""
    fig = go.Figure()
    fig.update_layout(title=title_dict(title, message), height=240, xaxis_visible=False, yaxis_visible=False,
                      annotations=[dict(text=message, x=0.5, y=0.5, xref="paper", yref="paper",
                                        showarrow=False, font_size=15)])
    return fig


def title_dict(main: str, caption: str) -> dict:
    """The title with the caption below it in small type ('<br>' in the caption starts a new line)."""
    lines = "".join(f"<br><sup>{line}</sup>" for line in caption.split("<br>"))
    return dict(text=main + lines, x=0.01, xanchor="left", yref="container", y=1, yanchor="top", pad_t=12)


def layout(fig: go.Figure, title: str, caption: str, height: int, legend_below: bool = False) -> go.Figure:
    legend = dict(groupclick="togglegroup")
    if legend_below:  # long names: below the plot, across its width
        legend |= dict(orientation="h", x=0, xanchor="left", y=-0.06, yanchor="top")
    top = 62 + 18 * caption.count("<br>") + 25 * bool(fig.layout.annotations)  # title, caption, subplot titles
    fig.update_layout(title=title_dict(title, caption), height=height + 150 * legend_below, legend=legend,
                      margin=dict(t=top, l=60, r=20, b=50 + 150 * legend_below))
    return fig


def colour_of(name: str, names: Sequence[str], palette: Sequence[str] = PALETTE) -> str:
    return palette[list(names).index(name) % len(palette)]

def counts(df: pd.DataFrame, what: str = "pairs") -> str:
    n_models = df["model"].nunique()
    models = f", {n_models} models" if n_models > 1 else f", model {df['model'].iloc[0]}" if n_models else ""
    return f"{df['mask'].nunique():,} {what}, {len(df):,} rows{models}"


def ci_args(part: pd.DataFrame, value: str = "DICE", unit: str = "pairs") -> dict:
    """Trace arguments for a mean ± 95% CI series from a ``stats.summary`` table."""
    return dict(error_y=dict(type="data", array=part["ci"].to_numpy(), thickness=1.2, width=3),
                customdata=np.column_stack([part["ci"], part["count"]]),
                hovertemplate="%{fullData.name}<br>%{x}: " + value + " %{y:.3f} ± %{customdata[0]:.3f}"
                              "<br>n = %{customdata[1]} " + unit + "<extra></extra>")

