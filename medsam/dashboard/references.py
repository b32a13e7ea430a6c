"""Figures of references and finetuning: ours beside published DICE, finetuned against base model
(paired), and label efficiency of prompt-free heads (labelled images, and AutoSAM's labelled volumes
scored in 3D). Published values are percentages in
``published.csv``: divided by 100 here, and always in series named ``published: <source> ...``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .data import filter_rows, pair_means
from .names import STRATEGY_ORDER, model_label, model_order, strategy_name
from .stats import summary
from .style import OURS, PUBLISHED, PUBLISHED_PALETTE, ci_args, colour_of, counts, empty_figure, layout

NO_FINETUNE = "No finetuning results yet: {} is missing or empty."
# Our strategy -> (prompt type shown, the names published tables give that prompt type).
PROMPT_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "everything": ("everything (grid)", ("S1 everything",)),
    "point_center": ("1 point", ("1 point", "S2 1 point")),
    "points_5pos": ("5 points", ("5 points", "S3 5 points")),
    "points_5pos5neg": ("5 pos + 5 neg points", ("S4 5 pos + 5 neg points",)),
    "box": ("box", ("box", "S5 box")),
    "box_point": ("box + 1 point", ("S6 box + 1 point",)),
}


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
    titles = ("all modalities, by prompt type", "box prompt, by modality<br>(published where the modality matches)")
    fig = make_subplots(rows=len(panels), cols=1, vertical_spacing=0.14, subplot_titles=titles[:len(panels)])
    models = model_order(pairs["model"].unique())
    prompt_of = {label: strategy for strategy, (label, _) in PROMPT_TYPES.items()}
    series = list(dict.fromkeys(pub["series"]))
    shown: set[str] = set()
    for row, (data, x, order, refs) in enumerate(panels, 1):
        for model in models:
            for value, pick, opacity in (("dice", "predicted-iou pick", 1.0), ("dice_oracle", "oracle pick", 0.55)):
                s = summary(data[data["model"] == model], [x], value).set_index(x).reindex(order)
                s = s.dropna(subset=["mean"])
                name = f"{OURS}{model_label(model)}, {pick}"
                raw = [prompt_of.get(v, "box") for v in s.index]  # the box panel's x is the modality
                fig.add_trace(go.Bar(x=s.index, y=s["mean"], name=name, legendgroup=name, showlegend=name not in shown,
                                     opacity=opacity, marker_color=colour_of(model, models), **ci_args(s, raw=raw)),
                              row=row, col=1)
                shown.add(name)
        for name, part in refs.groupby("series", sort=False):
            fig.add_trace(go.Bar(
                x=part[x], y=part["dice"], name=name, legendgroup=name, showlegend=name not in shown,
                marker=dict(color=colour_of(name, series, PUBLISHED_PALETTE), pattern_shape="/",
                            line=dict(color="#444", width=1)),
                customdata=np.column_stack([part["value"], part["source_ref"], part["modality"],
                                            part["note"].astype("string").fillna("")]),
                hovertemplate="%{fullData.name}<br>%{x}: DICE %{y:.4f} (published as %{customdata[0]} %)<br>"
                              "modality %{customdata[2]}; source: %{customdata[1]}<br>%{customdata[3]}<extra></extra>"),
                row=row, col=1)
            shown.add(name)
        fig.update_xaxes(categoryorder="array", categoryarray=order, row=row, col=1)
    fig.update_yaxes(title_text="DICE (0-1)", range=[0, 1.05])
    mapping = ", ".join(f"{strategy_name(s)} → {label}" for s, (label, _) in PROMPT_TYPES.items()
                        if s in set(pairs["strategy"]))
    caption = (f"solid: ours, mean over pairs, 95% CI ({counts(rows)}); hatched: published (% / 100; other data "
               f"and models, not our measurements)<br>our strategy → prompt type: {mapping}")
    return layout(fig, title, caption, 30 + 380 * len(panels), legend_below=True)


def fig_finetune(finetune: pd.DataFrame, published: pd.DataFrame | None = None,
                 modalities: Sequence[str] | None = None, strategies: Sequence[str] | None = None) -> go.Figure:
    """Finetuned minus base-model DICE, paired by (strategy, image, mask, seed), mean per target
    with 95% CI; each 'X_ft' model is paired with 'X', the model it was finetuned from (which need
    not be zero-shot: LiteMedSAM is itself finetuned on medical images). Published mean gains as
    reference lines. ``modalities`` and ``strategies`` select rows as in ``filter_rows``."""
    title = "Finetuned vs its starting model, per target"
    rows = finetune.dropna(subset=["dice"])
    if rows.empty:
        return empty_figure(title, NO_FINETUNE.format("finetune.csv"))
    rows = filter_rows(rows, None, modalities, strategies)
    key = ["strategy", "image", "mask", "seed"]
    models = set(rows["model"].astype(str))
    deltas = []
    for tuned in sorted(m for m in models if m.endswith("_ft") and m[:-3] in models):
        base = rows[rows["model"] == tuned[:-3]][key + ["modality", "object", "dice"]]
        paired = base.merge(rows[rows["model"] == tuned][key + ["dice"]], on=key, suffixes=("_base", "_ft"))
        deltas.append(paired.assign(delta=paired["dice_ft"] - paired["dice_base"],
                                    comparison=f"{model_label(tuned)} − {model_label(tuned[:-3])}"))
    d = pd.concat(deltas) if deltas else pd.DataFrame()
    if d.empty:
        return empty_figure(title, "Nothing to show: no finetuned ('X_ft') and base model ('X') rows pair up "
                                   "by strategy, image, mask and seed.")
    d["target"] = d["object"].astype(str) + " (" + d["modality"].astype(str) + ")"
    per_pair = d.groupby(["comparison", "strategy", "target", "mask"], sort=False)["delta"].mean().reset_index()
    s = summary(per_pair, ["comparison", "strategy", "target"], "delta")
    targets = sorted(s["target"].unique(), key=lambda t: (t.rsplit("(", 1)[-1], t))
    comparisons = list(dict.fromkeys(s["comparison"]))
    fig = go.Figure()
    for (comparison, strategy), part in s.groupby(["comparison", "strategy"], sort=False):
        name = strategy_name(strategy) + (f" ({comparison})" if len(comparisons) > 1 else "")
        fig.add_trace(go.Bar(y=part["target"], x=part["mean"], orientation="h", name=name,
                             marker_color=colour_of(strategy, STRATEGY_ORDER),
                             **ci_args(part, "ΔDICE", raw=[strategy] * len(part), horizontal=True)))
    n_series = len(fig.data)
    gains = [] if published is None else published[published["metric"] == "dice_gain_pct"].to_dict("records")
    for g in gains:
        name = f"{published_label(g)}: mean gain {g['value']:g} % (at ΔDICE {g['value'] / 100:g})"
        fig.add_trace(go.Scatter(x=[g["value"] / 100] * 2, y=[targets[0], targets[-1]], mode="lines", name=name,
                                 line=dict(dash="dash", width=1.5), hoverinfo="name"))
    fig.update_yaxes(categoryorder="array", categoryarray=targets[::-1])
    fig.update_xaxes(title_text="ΔDICE, finetuned − the model it starts from", zeroline=True, zerolinecolor="#888")
    fig.update_layout(barmode="group")
    caption = (f"ΔDICE = {'; '.join(comparisons)}: mean paired difference over pairs (seeds averaged), 95% CI; "
               f"dashed: published mean gains (other models and data; % read as DICE points); "
               f"{d['mask'].nunique():,} pairs, {len(d):,} paired rows")
    return layout(fig, title, caption, 10 + len(targets) * max(30, 14 * n_series), legend_below=True)


def fig_label_efficiency(label_efficiency: pd.DataFrame) -> go.Figure:
    """DICE against labelled examples k (log2 axis) per head, one panel per dataset: the mean over
    draws (classes n_test-weighted within a draw) with a band of +-1 SD over draws."""
    title = "Label efficiency"
    rows = _k_rows(label_efficiency, ["dice_mean"])
    if rows.empty:
        return empty_figure(title, NO_FINETUNE.format("label_efficiency.csv"))
    s = _draw_means(rows, "dice_mean").assign(metric="DICE")
    s["panel"] = s["dataset"]
    caption = f"mean over draws, band ±1 SD over draws; {s['dataset'].nunique()} datasets, {len(rows):,} rows"
    return _k_curves(s, title, caption, "k (labelled, log2)")


def fig_label_efficiency3d(label_efficiency3d: pd.DataFrame) -> go.Figure:
    """AutoSAM's protocol in 3D: 3D DICE and NSD at 2 mm of the test volumes against the labelled
    training volumes k (log2 axis) per head, a panel per dataset and metric; each point the mean over
    draws of the draw's mean over classes (of the per-class mean over test volumes), band +-1 SD over draws."""
    title = "Label efficiency in 3D"
    rows = _k_rows(label_efficiency3d, ["dice_mean", "nsd_mean"])
    if rows.empty:
        return empty_figure(title, NO_FINETUNE.format("label_efficiency3d.csv"))
    s = pd.concat([_draw_means(rows, value).assign(metric=metric)
                   for value, metric in (("dice_mean", "3D DICE"), ("nsd_mean", "NSD at 2 mm"))])
    s["panel"] = s["dataset"] + ": " + s["metric"]
    n_test = ", ".join(f"{d} {int(n)}" for d, n in rows.groupby("dataset")["n_test"].max().items())
    budget = _budget(rows)
    caption = (f"mean over draws of the class mean, band ±1 SD over draws; test volumes: {n_test}; unet: "
               f"trained from scratch, the others on LiteMedSAM's frozen encoder; {budget}{len(rows):,} rows")
    return _k_curves(s, title, caption, "k (labelled volumes, log2)")


def _budget(rows: pd.DataFrame) -> str:
    """The caption's words on the steps per training: one figure, or its range over k."""
    steps = rows.dropna(subset=["steps"]).groupby("k")["steps"].max()
    if steps.empty:
        return ""
    if steps.nunique() == 1:
        return f"{int(steps.iloc[0]):,} steps per training whatever k (few passes over the slices at large k); "
    low, high = int(steps.idxmin()), int(steps.idxmax())
    return f"{int(steps[low]):,} steps per training at k={low} to {int(steps[high]):,} at k={high}; "


def _k_rows(table: pd.DataFrame, values: Sequence[str]) -> pd.DataFrame:
    rows = table.dropna(subset=[*values, "k"])
    return rows[rows["k"] > 0]


def _draw_means(rows: pd.DataFrame, value: str) -> pd.DataFrame:
    """(dataset, head, k) -> mean, std and count over draws of each draw's mean of ``value`` over
    classes, weighted by their n_test."""
    weight = rows["n_test"].where(rows["n_test"] > 0, 1)
    rows = rows.assign(w=weight, wv=weight * rows[value], draw=rows["draw"].fillna(0))
    per_draw = rows.groupby(["dataset", "head", "k", "draw"], sort=False)[["w", "wv"]].sum().reset_index()
    per_draw["value"] = per_draw["wv"] / per_draw["w"]
    s = per_draw.groupby(["dataset", "head", "k"])["value"].agg(["mean", "std", "count"]).reset_index()
    s["std"] = s["std"].fillna(0)
    return s


def _k_curves(s: pd.DataFrame, title: str, caption: str, x_title: str) -> go.Figure:
    """A panel per ``panel`` (y axis titled by its ``metric``): per head, ``mean`` against k on a log2
    axis with a band of +-``std`` (clipped to [0, 1]: DICE and NSD); ``count`` draws in the hover."""
    panels = list(dict.fromkeys(s.sort_values(["dataset", "metric"])["panel"]))
    heads = sorted(s["head"].astype(str).unique())
    cols = min(3, len(panels))
    n_rows = -(-len(panels) // cols)
    fig = make_subplots(rows=n_rows, cols=cols, subplot_titles=panels, vertical_spacing=0.12)
    ticks = sorted(s["k"].unique())
    for i, panel in enumerate(panels):
        r, c = divmod(i, cols)
        for head in heads:
            part = s[(s["panel"] == panel) & (s["head"].astype(str) == head)].sort_values("k")
            if part.empty:
                continue
            colour = colour_of(head, heads)
            x = part["k"].to_numpy()
            band = np.clip(np.r_[part["mean"] + part["std"], (part["mean"] - part["std"])[::-1]], 0, 1)  # DICE, NSD
            fig.add_trace(go.Scatter(x=np.r_[x, x[::-1]], y=band,
                                     fill="toself", fillcolor=colour, opacity=0.2, line_width=0, legendgroup=head,
                                     showlegend=False, hoverinfo="skip", name=f"{head} ±1 SD"), row=r + 1, col=c + 1)
            fig.add_trace(go.Scatter(x=x, y=part["mean"], mode="lines+markers", name=head, legendgroup=head,
                                     showlegend=i == 0, line_color=colour, customdata=part["count"],
                                     hovertemplate="%{fullData.name}<br>k = %{x}: " + part["metric"].iloc[0]
                                                   + " %{y:.3f}<br>%{customdata} draws<extra></extra>"),
                          row=r + 1, col=c + 1)
        fig.update_yaxes(title_text=s.loc[s["panel"] == panel, "metric"].iloc[0], row=r + 1, col=c + 1)
    fig.update_xaxes(type="log", tickvals=ticks, ticktext=[f"{k:g}" for k in ticks], title_text=x_title)
    return layout(fig, title, caption, 30 + 330 * n_rows)
