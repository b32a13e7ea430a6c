"""The Dashboard tab: Gradio layout and wiring only; the answers and figures come from ``medsam.dashboard``.

The tab leads with four question panels (``QUESTIONS``), each a sentence computed from the selected
rows and a compact figure, two per line on a wide screen and one per line on a phone (a column is
at least ``PANEL_MIN_PX`` wide). Filters, the detailed figures and the rows table sit in closed
accordions below the introduction and the panels; every panel and figure follows the filters. The
detailed figures are built when "More figures" is opened, and on a filter change only while it is
open: the page and a filter change cost the four answers.
"""

from __future__ import annotations

import functools
import hashlib
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd

from ..dashboard import (
    FILTER_COLUMNS,
    Results,
    build_figures,
    choices,
    coverage_note,
    fig_descriptors,
    fig_label_efficiency,
    fig_label_efficiency3d,
    fig_volumes,
    filter_rows,
    load_results,
    model_label,
    model_order,
    strategy_name,
)
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
# Sections (inner tabs) of "More figures" and the figures they show: those of ``build_figures``
# (``FIGURES``, in its order) and those the filters leave alone (``UNFILTERED``): label efficiency in 2D
# and 3D, and the 3D benchmark.
SECTIONS = {"Overview": ["modality", "published"], "Targets": ["heatmap", "descriptors"],
            "Prompts": ["oracle", "jitter", "interactive"],
            "Finetuning": ["finetune", "label-efficiency", "label-efficiency-3d"], "Volumes": ["volumes-3d"]}
FIGURES = ["modality", "published", "heatmap", "oracle", "descriptors", "jitter", "interactive", "finetune"]
UNFILTERED = ["label-efficiency", "label-efficiency-3d", "volumes-3d"]
PANEL_MIN_PX = 440  # two panels side by side from about 950 px of page width
CACHED_SELECTIONS = 8
# Own queue (not behind segmentation requests), not in the public API; a burst of filter edits runs once
# more at most, with the last selection.
EVENT = {"api_visibility": "private", "concurrency_id": "dashboard", "show_progress": "minimal",
         "trigger_mode": "always_last"}


def build_dashboard_tab(results_dir: Path) -> None:
    """The Dashboard tab's content from the CSVs of ``results_dir``, read once here (the answers for
    the full selection are built now, the detailed figures when "More figures" is first opened);
    call inside ``with gr.Tab("Dashboard"):``."""
    results = load_results(results_dir)
    bench = results.benchmark
    options = {c: choices(bench, c) for c in FILTER_COLUMNS}
    strategy = "box" if "box" in options["strategy"] else next(iter(options["strategy"]), None)
    views = _Views(results)
    rows, said, answers = views.answers(())
    downloads = _Downloads()

    gr.Markdown(_intro(Path(results_dir), bench), elem_id="dash-intro")
    with gr.Accordion("Filters: models, modalities, prompts, splits", open=False, elem_id="dash-filters"):
        with gr.Row():
            filters = [gr.Dropdown(_labelled(c, options[c]), value=options[c], multiselect=True,
                                   label=FILTER_LABELS[c], elem_id=FILTER_IDS[c], min_width=240)
                       for c in FILTER_COLUMNS]
    summary = gr.Markdown(_summary(rows, said), elem_id="dash-summary")
    texts, panels = _question_panels(answers)
    with gr.Accordion("More figures", open=False, elem_id="dash-more") as more:
        note = gr.Markdown(_note(rows), elem_id="dash-note")
        plots, descriptor = _sections(options["strategy"], strategy)
    with gr.Accordion("Rows: the selected benchmark rows", open=False, elem_id="dash-rows"):
        table = gr.Dataframe(_table(rows), label=_table_label(rows), interactive=False, max_height=420, wrap=True,
                             column_widths=[f"{w}px" for w in TABLE_COLUMNS.values()], elem_id="dash-table")
        download = gr.DownloadButton("Download the selected rows (CSV)", elem_id="dash-download")
    more_open = gr.State(False)  # per browser tab: the detailed figures follow the filters only while shown

    def update(is_open: bool, *selection: list[str] | str | None) -> tuple:
        rows, said, answers = views.answers(_key(selection[:4]))
        detailed = _in_order(views.figures(_key(selection))) if is_open else [gr.skip()] * len(FIGURES)
        return (*detailed, *(_answer_text(k, answers[k]) for k in texts), *(answers[k].figure for k in panels),
                _summary(rows, said), _note(rows), gr.update(value=_table(rows), label=_table_label(rows)))

    def rescatter(*selection: list[str] | str | None) -> object:
        return fig_descriptors(filter_rows(bench, *selection[:4]), selection[4])

    inputs = [*filters, descriptor]
    detailed = [plots[n] for n in FIGURES]
    gr.on([f.change for f in filters], update, [more_open, *inputs],
          [*detailed, *texts.values(), *panels.values(), summary, note, table], **EVENT)
    more.expand(lambda *s: (True, *_in_order(views.figures(_key(s))), *views.unfiltered()), inputs,
                [more_open, *detailed, *(plots[n] for n in UNFILTERED)], **EVENT)
    more.collapse(lambda: False, None, more_open, **EVENT)
    descriptor.change(rescatter, inputs, plots["descriptors"], **EVENT)
    # The CSV is written when the page loads and when a filter changes, not at start-up (~1 s for 50k rows).
    gr.on(None, lambda *s: downloads.csv(filter_rows(bench, *s)), filters, download, **EVENT)


class _Views:
    """The answers and the detailed figures of a selection (a ``_key``), each kept for the last
    ``CACHED_SELECTIONS`` selections: going back to one, or another visitor making it, is free."""

    def __init__(self, results: Results) -> None:
        self.results = results
        self.answers = functools.lru_cache(CACHED_SELECTIONS)(self._answers)
        self.figures = functools.lru_cache(CACHED_SELECTIONS)(self._figures)
        self.unfiltered = functools.cache(lambda: (fig_label_efficiency(results.label_efficiency),
                                                   fig_label_efficiency3d(results.label_efficiency3d),
                                                   fig_volumes(results.benchmark3d)))

    def _answers(self, selection: tuple) -> tuple[pd.DataFrame, str, dict[str, Answer]]:
        rows = filter_rows(self.results.benchmark, *selection)
        return rows, *build_answers(rows, self.results.published)

    def _figures(self, selection: tuple) -> dict:
        return build_figures(self.results, *selection)[1]


def _in_order(figures: dict) -> list:
    return [figures[name] for name in FIGURES]


def _key(selection: tuple) -> tuple:
    """A selection as a cache key: each filter's values sorted into a tuple."""
    return tuple(tuple(sorted(v)) if isinstance(v, list) else v for v in selection)


def _question_panels(answers: dict[str, Answer]) -> tuple[dict[str, gr.Markdown], dict[str, gr.Plot]]:
    """The four question panels, two per line where they fit: each its answer, then its figure."""
    texts, plots = {}, {}
    with gr.Row(elem_id="dash-questions"):
        for key in QUESTIONS:
            with gr.Column(min_width=PANEL_MIN_PX, elem_id=f"dash-question-{key}"):
                texts[key] = gr.Markdown(_answer_text(key, answers[key]), elem_id=f"dash-answer-{key}")
                plots[key] = gr.Plot(answers[key].figure, show_label=False, elem_id=f"dash-{key}")
    return texts, plots


def _sections(strategies: list[str], strategy: str | None) -> tuple[dict[str, gr.Plot], gr.Dropdown]:
    """The detailed figures' places in inner tabs, empty until "More figures" is opened."""
    plots = {}
    with gr.Tabs(elem_id="dash-sections"):
        for title, names in SECTIONS.items():
            with gr.Tab(title, elem_id=f"dash-section-{title.lower()}"):
                for name in names:
                    if name == "descriptors":
                        descriptor = gr.Dropdown(_labelled("strategy", strategies), value=strategy,
                                                 label="Prompt of the descriptor scatter",
                                                 elem_id="dash-descriptor-strategy")
                    plots[name] = gr.Plot(show_label=False, elem_id=f"dash-{name}")
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
