"""The Dashboard tab: Gradio layout and wiring only; the answers and figures come from ``medsam.dashboard``.

The tab leads with four question panels (``QUESTIONS``), each a sentence computed from the selected
rows and a compact figure, two per line on a wide screen and one per line on a phone (a column is
at least ``PANEL_MIN_PX`` wide). Filters, the detailed figures and the rows table sit in closed
accordions below the introduction and the panels; every panel and figure follows the filters.
"""

from __future__ import annotations

import functools
import hashlib
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd

from ..dashboard import (FILTER_COLUMNS, build_figures, choices, coverage_note, fig_descriptors, fig_label_efficiency,
                        filter_rows, load_results, model_label, model_order, strategy_name)
from ..dashboard.answers import QUESTIONS, Answer, build_answers
from ..dashboard.names import model_about, model_short
from ..paths import shown

TABLE_ROWS = 200
# Column -> its width in px: 1,188 px in all, the table's width on a 1280 px page; text wraps within a
# column, and a narrower page scrolls the table sideways inside its block.
TABLE_COLUMNS = {"model": 140, "dataset": 120, "modality": 90, "object": 100, "split": 62, "strategy": 130,
                 "seed": 58, "dice": 66, "dice_oracle": 90, "iou": 66, "hd95": 72, "nsd": 66, "noc85": 64, "noc90": 64}
# How a filter's values are shown (the value passed on stays the benchmark's name).
SHOWN = {"model": model_label, "strategy": strategy_name}
FILTER_LABELS = {"model": "Models", "modality": "Modalities", "strategy": "Prompts", "split": "Splits"}
FILTER_IDS = {"model": "dash-models", "modality": "dash-modalities", "strategy": "dash-strategies",
              "split": "dash-splits"}
# Sections (inner tabs) of "More figures" and the figures of ``build_figures`` they show.
SECTIONS = {"Overview": ["modality", "published"], "Targets": ["heatmap", "descriptors"],
            "Prompts": ["oracle", "jitter", "interactive"], "Finetuning": ["finetune", "label-efficiency"]}
PANEL_MIN_PX = 440  # two panels side by side from about 950 px of page width
CACHED_SELECTIONS = 8  # the answers and figures of the last selections are kept: going back to one is free
# Own queue (not behind segmentation requests), not in the public API; a burst of filter edits runs once
# more at most, with the last selection.
EVENT = {"api_visibility": "private", "concurrency_id": "dashboard", "show_progress": "minimal",
         "trigger_mode": "always_last"}


def build_dashboard_tab(results_dir: Path) -> None:
    """The Dashboard tab's content from the CSVs of ``results_dir``, read once here (the answers and
    figures for the full selection are built now); call inside ``with gr.Tab("Dashboard"):``."""
    results = load_results(results_dir)
    bench = results.benchmark
    options = {c: choices(bench, c) for c in FILTER_COLUMNS}
    strategy = "box" if "box" in options["strategy"] else next(iter(options["strategy"]), None)
    rows, figures = build_figures(results, descriptor_strategy=strategy)
    said, answers = build_answers(rows, results.published)
    unfiltered = {"label-efficiency": fig_label_efficiency(results.label_efficiency)}  # built once
    downloads = _Downloads()

    gr.Markdown(_intro(Path(results_dir), bench), elem_id="dash-intro")
    with gr.Accordion("Filters: models, modalities, prompts, splits", open=False, elem_id="dash-filters"):
        with gr.Row():
            filters = [gr.Dropdown(_labelled(c, options[c]), value=options[c], multiselect=True,
                                   label=FILTER_LABELS[c], elem_id=FILTER_IDS[c], min_width=240)
                       for c in FILTER_COLUMNS]
    summary = gr.Markdown(_summary(rows, said), elem_id="dash-summary")
    texts, panels = _question_panels(answers)
    with gr.Accordion("More figures", open=False, elem_id="dash-more"):
        note = gr.Markdown(_note(rows), elem_id="dash-note")
        plots, descriptor = _sections(figures | unfiltered, options["strategy"], strategy)
    with gr.Accordion("Rows: the selected benchmark rows", open=False, elem_id="dash-rows"):
        table = gr.Dataframe(_table(rows), label=_table_label(rows), interactive=False, max_height=420, wrap=True,
                             column_widths=[f"{w}px" for w in TABLE_COLUMNS.values()], elem_id="dash-table")
        download = gr.DownloadButton("Download the selected rows (CSV)", elem_id="dash-download")

    @functools.lru_cache(maxsize=CACHED_SELECTIONS)
    def view(selection: tuple) -> tuple[pd.DataFrame, dict, str, dict[str, Answer]]:
        rows, figures = build_figures(results, *selection)
        return rows, figures, *build_answers(rows, results.published)

    def update(*selection: list[str] | str | None) -> tuple:
        rows, figures, said, answers = view(tuple(tuple(sorted(v)) if isinstance(v, list) else v for v in selection))
        return (*figures.values(), *(_answer_text(k, answers[k]) for k in texts),
                *(answers[k].figure for k in panels), _summary(rows, said), _note(rows),
                gr.update(value=_table(rows), label=_table_label(rows)))

    def rescatter(*selection: list[str] | str | None) -> object:
        return fig_descriptors(filter_rows(bench, *selection[:4]), selection[4])

    inputs = [*filters, descriptor]
    outputs = [*(plots[n] for n in figures), *texts.values(), *panels.values(), summary, note, table]
    gr.on([f.change for f in filters], update, inputs, outputs, **EVENT)
    descriptor.change(rescatter, inputs, plots["descriptors"], **EVENT)
    # The CSV is written when the page loads and when a filter changes, not at start-up (~1 s for 50k rows).
    gr.on(None, lambda *s: downloads.csv(filter_rows(bench, *s)), filters, download, **EVENT)


def _question_panels(answers: dict[str, Answer]) -> tuple[dict[str, gr.Markdown], dict[str, gr.Plot]]:
    """The four question panels, two per line where they fit: each its answer, then its figure."""
    texts, plots = {}, {}
    with gr.Row(elem_id="dash-questions"):
        for key in QUESTIONS:
            with gr.Column(min_width=PANEL_MIN_PX, elem_id=f"dash-question-{key}"):
                texts[key] = gr.Markdown(_answer_text(key, answers[key]), elem_id=f"dash-answer-{key}")
                plots[key] = gr.Plot(answers[key].figure, show_label=False, elem_id=f"dash-{key}")
    return texts, plots


def _sections(figures: dict, strategies: list[str], strategy: str | None) -> tuple[dict[str, gr.Plot], gr.Dropdown]:
    """The detailed figures in inner tabs (a tab's figures are drawn when it is opened)."""
    plots = {}
    with gr.Tabs(elem_id="dash-sections"):
        for title, names in SECTIONS.items():
            with gr.Tab(title, elem_id=f"dash-section-{title.lower()}"):
                for name in names:
                    if name == "descriptors":
                        descriptor = gr.Dropdown(_labelled("strategy", strategies), value=strategy,
                                                 label="Prompt of the descriptor scatter",
                                                 elem_id="dash-descriptor-strategy")
                    plots[name] = gr.Plot(figures[name], show_label=False, elem_id=f"dash-{name}")
    return plots, descriptor


def _answer_text(key: str, answer: Answer) -> str:
    return f"### {QUESTIONS[key]}\n{answer.text}"


def _intro(folder: Path, bench: pd.DataFrame) -> str:
    if bench.empty:
        return (f"No benchmark results yet in `{shown(folder)}`: run `python -m medsam.benchmark` (see the README) "
                "and restart the app.")
    models = "".join(f"\n- **{model_label(m)}**, *{model_short(m)}* in the answers"
                     + (f": {model_about(m)}." if model_about(m) else ".")
                     for m in model_order(bench["model"].dropna().unique()))
    return (f"How Segment Anything models do on medical images: {len(bench):,} benchmark rows from "
            f"`{shown(folder / 'benchmark.csv')}`, read when the app started. DICE is 0-1 (1: the mask matches the "
            "ground truth exactly); error bars are 95% CIs over pairs. Numbers named **published:** (hatched bars) "
            f"are other projects' figures from `{shown(folder / 'published.csv')}`, never our measurements.{models}")


def _summary(rows: pd.DataFrame, said: str) -> str:
    return (f"**Selected:** {len(rows):,} rows, {rows['mask'].nunique():,} pairs, {rows['model'].nunique()} "
            f"model(s), {rows['strategy'].nunique()} prompts (see *Filters*). {said}")


def _note(rows: pd.DataFrame) -> str:
    """The figures below use every selected row: say when the models were run on different pairs."""
    note = coverage_note(rows)
    return f"**Note:** {note}" if note else ""


def _labelled(column: str, values: list[str]) -> list[tuple[str, str]]:
    """Dropdown choices (shown, value) of a filter column."""
    shown_as = SHOWN.get(column, str)
    return [(shown_as(v), v) for v in values]


def _table(rows: pd.DataFrame) -> pd.DataFrame:
    """The first rows, main columns, models and strategies by the names shown elsewhere, floats
    rounded to 3 decimals (inf hd95: empty prediction, shown blank)."""
    head = rows[[c for c in TABLE_COLUMNS if c in rows.columns]].head(TABLE_ROWS)
    head = head.assign(**{c: head[c].astype(str).map(name) for c, name in SHOWN.items() if c in head.columns})
    return head.replace([np.inf, -np.inf], np.nan).round(3)


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
