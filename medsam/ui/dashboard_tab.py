"""The Dashboard tab: Gradio layout and wiring only; the figures come from ``medsam.dashboard``."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd

from ..dashboard import (FILTER_COLUMNS, build_figures, choices, coverage_note, fig_descriptors, filter_rows,
                        load_results, model_label, strategy_name)
from ..paths import shown

TABLE_ROWS = 200
TABLE_COLUMNS = ["model", "dataset", "modality", "object", "split", "strategy", "seed", "dice", "dice_oracle", "iou",
                 "hd95", "nsd", "noc85", "noc90"]
# How a filter's values are shown (the value passed on stays the benchmark's name).
SHOWN = {"model": model_label, "strategy": strategy_name}
FILTER_LABELS = {"model": "Models", "modality": "Modalities", "strategy": "Strategies", "split": "Splits"}
FILTER_IDS = {"model": "dash-models", "modality": "dash-modalities", "strategy": "dash-strategies",
              "split": "dash-splits"}
# Sections (inner tabs) and the figures of ``build_figures`` they show; a last one holds the rows.
SECTIONS = {"Overview": ["modality", "published"], "Targets": ["heatmap", "descriptors"],
            "Prompts": ["oracle", "jitter", "interactive"], "Finetuning": ["finetune", "label-efficiency"]}
# Own queue (not behind segmentation requests), not in the public API; a burst of filter edits runs once
# more at most, with the last selection.
EVENT = {"api_visibility": "private", "concurrency_id": "dashboard", "show_progress": "minimal",
         "trigger_mode": "always_last"}


def build_dashboard_tab(results_dir: Path) -> None:
    """The Dashboard tab's content from the CSVs of ``results_dir``, read once here (the figures
    for the full selection are built now); call inside ``with gr.Tab("Dashboard"):``."""
    results = load_results(results_dir)
    bench = results.benchmark
    options = {c: choices(bench, c) for c in FILTER_COLUMNS}
    strategy = "box" if "box" in options["strategy"] else next(iter(options["strategy"]), None)
    rows, figures = build_figures(results, descriptor_strategy=strategy)
    downloads = _Downloads()

    gr.Markdown(_intro(Path(results_dir), len(bench)), elem_id="dash-intro")
    with gr.Row():
        filters = [gr.Dropdown(_labelled(c, options[c]), value=options[c], multiselect=True, label=FILTER_LABELS[c],
                               elem_id=FILTER_IDS[c]) for c in FILTER_COLUMNS]
    summary = gr.Markdown(_summary(rows), elem_id="dash-summary")
    plots = {}
    with gr.Tabs(elem_id="dash-sections"):  # a section's figures are drawn when it is opened
        for title, names in SECTIONS.items():
            with gr.Tab(title, elem_id=f"dash-section-{title.lower()}"):
                for name in names:
                    if name == "descriptors":
                        descriptor = gr.Dropdown(_labelled("strategy", options["strategy"]), value=strategy,
                                                 label="Strategy of the descriptor scatter",
                                                 elem_id="dash-descriptor-strategy")
                    plots[name] = gr.Plot(figures[name], show_label=False, elem_id=f"dash-{name}")
        with gr.Tab("Rows", elem_id="dash-section-rows"):
            table = gr.Dataframe(_table(rows), label=_table_label(rows), interactive=False, max_height=420,
                                 elem_id="dash-table")
            download = gr.DownloadButton("Download the selected rows (CSV)", elem_id="dash-download")

    def update(*selection: list[str] | str | None) -> tuple:
        rows, figures = build_figures(results, *selection)
        return *(figures[n] for n in plots), _summary(rows), gr.update(value=_table(rows), label=_table_label(rows))

    def rescatter(*selection: list[str] | str | None) -> object:
        return fig_descriptors(filter_rows(bench, *selection[:4]), selection[4])

    inputs = [*filters, descriptor]
    gr.on([f.change for f in filters], update, inputs, [*plots.values(), summary, table], **EVENT)
    descriptor.change(rescatter, inputs, plots["descriptors"], **EVENT)
    # The CSV is written when the page loads and when a filter changes, not at start-up (~1 s for 50k rows).
    gr.on(None, lambda *s: downloads.csv(filter_rows(bench, *s)), filters, download, **EVENT)


def _intro(folder: Path, n_rows: int) -> str:
    if not n_rows:
        return (f"No benchmark results yet in `{shown(folder)}`: run `python -m medsam.benchmark` (see the README) "
                "and restart the app.")
    return (f"Benchmark results read from `{shown(folder / 'benchmark.csv')}` when the app started ({n_rows:,} rows; "
            "restart to pick up newer rows). Every figure uses the rows the filters select; DICE is 0-1, error "
            "bars are 95% CIs over pairs. Hatched bars and lines named **published:** are other projects' "
            f"figures from `{shown(folder / 'published.csv')}` with their source, never our measurements.")


def _summary(rows: pd.DataFrame) -> str:
    note = coverage_note(rows)
    return (f"**Selected:** {len(rows):,} rows, {rows['mask'].nunique():,} pairs, {rows['model'].nunique()} "
            f"model(s), {rows['strategy'].nunique()} strategies." + (f" **Note:** {note}" if note else ""))


def _labelled(column: str, values: list[str]) -> list[tuple[str, str]]:
    """Dropdown choices (shown, value) of a filter column."""
    shown = SHOWN.get(column, str)
    return [(shown(v), v) for v in values]


def _table(rows: pd.DataFrame) -> pd.DataFrame:
    """The first rows, main columns, models and strategies by the names shown elsewhere, floats
    rounded (inf hd95: empty prediction, shown blank)."""
    head = rows[[c for c in TABLE_COLUMNS if c in rows.columns]].head(TABLE_ROWS)
    head = head.assign(**{c: head[c].astype(str).map(shown) for c, shown in SHOWN.items() if c in head.columns})
    return head.replace([np.inf, -np.inf], np.nan).round(4)


def _table_label(rows: pd.DataFrame) -> str:
    n = min(len(rows), TABLE_ROWS)
    return (f"Selected rows: the first {n:,} of {len(rows):,} (the download holds all, with every column and the "
            "benchmark's names for models and strategies)")


class _Downloads:
    """CSV files of selected rows in a temporary folder, one per selection (the rows never change),
    the ``KEEP`` most recently written kept."""

    KEEP = 16

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="medsam-dashboard-"))

    def csv(self, rows: pd.DataFrame) -> Path:
        """The file of these rows (named by their row numbers), written on first use."""
        key = hashlib.sha1(rows.index.to_numpy().tobytes()).hexdigest()[:16]
        path = self.folder / f"benchmark-selected-{key}.csv"
        if not path.is_file():
            with tempfile.NamedTemporaryFile("w", dir=self.folder, suffix=".part", delete=False, newline="") as f:
                rows.to_csv(f, index=False)
            Path(f.name).replace(path)  # never serve a half-written file
            for old in sorted(self.folder.glob("*.csv"), key=lambda f: f.stat().st_mtime)[:-self.KEEP]:
                old.unlink(missing_ok=True)
        return path
