"""The 3D benchmark's figure: one prompt propagated to a whole structure, against a box on every slice.

Reads ``benchmark3d.csv`` (``python -m medsam.benchmark3d``): one row per (model, volume, object,
strategy) with 3D DICE. A bar is the mean over a structure's volumes with its 95% CI; structures
whose reference is a model's prediction (``reference`` starting with "model") are marked
"(reference: model prediction)" in their name, never shown as expert ground truth.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..strategies import STRATEGIES_3D
from .names import model_label, model_order
from .stats import summary
from .style import PALETTE, ci_args, empty_figure, layout

TITLE = "One prompt to a whole structure (3D)"
MISSING = "No 3D benchmark results yet: benchmark3d.csv is missing or empty (python -m medsam.benchmark3d)."


def structure_name(dataset: str, obj: str, reference: str) -> str:
    """A structure as shown, saying when its reference is a model's prediction."""
    name = f"{dataset}: {obj}"
    return f"{name} (reference: model prediction)" if str(reference).lower().startswith("model") else name


def fig_volumes(benchmark3d: pd.DataFrame) -> go.Figure:
    """3D DICE per structure (bars, mean and 95% CI over its volumes), a colour per 3D strategy, a
    panel per model."""
    rows = benchmark3d.dropna(subset=["dice3d"])
    if rows.empty:
        return empty_figure(TITLE, MISSING)
    rows = rows.assign(structure=[structure_name(d, o, r) for d, o, r in
                                  zip(rows["dataset"], rows["object"], rows["reference"].fillna(""))])
    models = model_order(rows["model"].astype(str).unique())
    structures = sorted(rows["structure"].unique())
    strategies = [s for s in STRATEGIES_3D if s in set(rows["strategy"])]
    fig = make_subplots(rows=len(models), cols=1, subplot_titles=[model_label(m) for m in models],
                        vertical_spacing=0.5 / max(len(models), 1) if len(models) > 1 else 0.0)
    for i, model in enumerate(models):
        table = summary(rows[rows["model"].astype(str) == model], ["structure", "strategy"], "dice3d")
        for j, strategy in enumerate(strategies):
            part = table[table["strategy"] == strategy].set_index("structure").reindex(structures).dropna(
                subset=["mean"]).reset_index()
            fig.add_trace(go.Bar(x=part["structure"], y=part["mean"], name=f"ours: {STRATEGIES_3D[strategy].shown}",
                                 legendgroup=strategy, showlegend=i == 0, marker_color=PALETTE[j % len(PALETTE)],
                                 **ci_args(part, "3D DICE", "volumes", raw=[strategy] * len(part))),
                          row=i + 1, col=1)
        fig.update_yaxes(title_text="3D DICE", range=[0, 1], row=i + 1, col=1)
    volumes = rows.groupby("structure")["image"].nunique()
    caption = (f"mean ± 95% CI over volumes; {len(structures)} structures, "
               f"{int(volumes.min())}-{int(volumes.max())} volumes each, {len(rows):,} rows")
    fig.update_layout(barmode="group")
    return layout(fig, TITLE, caption, 300 * len(models), legend_below=True, legend_px=90)
