"""Benchmark dashboard: result tables in, plotly figures out (no model runs, no Gradio).

``load_results(folder)`` reads ``benchmark.csv``, ``published.csv``, ``finetune.csv``,
``label_efficiency.csv``, ``label_efficiency3d.csv`` and ``benchmark3d.csv`` (each may be missing); ``filter_rows``
selects rows; every ``fig_*`` function is pure and returns a figure whose title carries a one-line
caption (what it shows, how many pairs). An empty selection gives a figure that says there is nothing to show.

DICE is on a 0-1 scale throughout; published percentages are divided by 100 and every published
value sits in a trace named ``published: <source> ...`` (ours: ``ours: ...``). Means over pairs
average each pair's seeds first; error bars and bands are 95% CIs of the mean (mean +- 1.96 SE).

Modules: ``names`` (the strategy and model names people read), ``data`` (tables, selection, pairs),
``stats`` (CIs, correlations), ``style`` (titles, colours), ``figures`` (benchmark figures),
``references`` (published, finetuning, label efficiency), ``report`` (text summary).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from .data import (
    COLUMNS,
    DESCRIPTORS,
    FILTER_COLUMNS,
    Results,
    choices,
    click_curves,
    coverage_note,
    filter_rows,
    load_results,
    pair_means,
)
from .figures import fig_descriptors, fig_heatmap, fig_interactive, fig_jitter, fig_modality, fig_oracle_gap
from .names import STRATEGY_ORDER, model_label, model_order, strategy_name
from .references import (
    PROMPT_TYPES,
    fig_finetune,
    fig_label_efficiency,
    fig_label_efficiency3d,
    fig_published,
    published_dice,
    published_label,
)
from .report import report
from .stats import partial_spearman, rho_text, spearman
from .style import empty_figure
from .volumes import fig_volumes

__all__ = [
    "COLUMNS", "DESCRIPTORS", "FILTER_COLUMNS", "PROMPT_TYPES", "STRATEGY_ORDER", "Results", "build_figures",
    "choices", "click_curves", "coverage_note", "empty_figure", "fig_descriptors", "fig_finetune", "fig_heatmap",
    "fig_interactive", "fig_jitter", "fig_label_efficiency", "fig_label_efficiency3d", "fig_modality",
    "fig_oracle_gap", "fig_published", "fig_volumes", "filter_rows", "load_results", "model_label", "model_order",
    "pair_means", "partial_spearman", "published_dice", "published_label", "report", "rho_text", "spearman",
    "strategy_name",
]


def build_figures(results: Results, models: Sequence[str] | None = None, modalities: Sequence[str] | None = None,
                  strategies: Sequence[str] | None = None, splits: Sequence[str] | None = None,
                  descriptor_strategy: str | None = None) -> tuple[pd.DataFrame, dict[str, go.Figure]]:
    """The selected benchmark rows and every figure that follows the filters, keyed by panel name
    (label efficiency, which does not, is ``fig_label_efficiency`` and ``fig_label_efficiency3d``). The
    finetuning comparison follows the modality and strategy filters only (its models and split are its own)."""
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
    }

