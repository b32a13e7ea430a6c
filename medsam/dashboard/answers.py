"""The Dashboard's four questions, each answered by one sentence computed from the selected rows and
a compact figure (``panels``): where does it work, which prompt, why does it fail, does finetuning
help.

The answers compare models on the same pairs: those every selected model was run on
(``shared_pairs``), seeds averaged per pair; ``compared`` says which models and pairs. Models go by
their short names (``names.MODEL_NAMES``; the Dashboard's introduction gives the full labels),
except in the finetuning answer, which gives the full labels. Mean DICE has 2 decimals, paired
differences 3; with several models a number is given per model, in the order each sentence ends
with ("0.78 / 0.77 ... — LiteMedSAM / our finetune, 351 pairs"). Published numbers appear only in
the finetuning answer, said to be published.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from . import panels
from .data import pair_means, strategy_order
from .names import STRATEGY_GROUP, model_label, model_order, model_short, strategy_name
from .stats import spearman, summary
from .style import NOTHING, empty_figure

QUESTIONS = {"where": "Where does it work?", "prompt": "Which prompt?", "failure": "Why does it fail?",
             "finetuning": "Does finetuning help?"}
LEAD_STRATEGY = "box"  # the prompt of the modality and failure answers, when selected
TREND = 0.1  # |rho| below this: "hardly changes"


@dataclass(frozen=True)
class Answer:
    """One question's answer: a sentence (Markdown) and its figure."""

    text: str
    figure: go.Figure


def build_answers(rows: pd.DataFrame, published: pd.DataFrame) -> tuple[str, dict[str, Answer]]:
    """What the answers compare (``compared``) and the four answers for the selected benchmark rows,
    keyed as ``QUESTIONS``."""
    pairs, models = shared_pairs(rows)
    if pairs.empty:
        return NOTHING, {key: Answer(NOTHING, empty_figure(question)) for key, question in QUESTIONS.items()}
    return compared(pairs, models), {
        "where": where_it_works(pairs, models), "prompt": which_prompt(pairs, models),
        "failure": why_it_fails(pairs, models), "finetuning": does_finetuning_help(pairs, models, published)}


def shared_pairs(rows: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Per (model, strategy, pair) means over seeds, of the pairs every model was run on; the models."""
    pairs = pair_means(rows.dropna(subset=["dice"]), ("dice", "dice_oracle"))
    models = model_order(pairs["model"].unique())
    if len(models) > 1:
        masks = pairs.groupby("model", observed=True)["mask"].agg(lambda s: set(s.unique()))
        pairs = pairs[pairs["mask"].isin(set.intersection(*masks))]
    return pairs, models


def compared(pairs: pd.DataFrame, models: list[str]) -> str:
    """Which models the answers compare (by the short names the sentences use), on which pairs."""
    splits = sorted(map(str, pairs["split"].dropna().unique()))
    split = f" (split{'s' if len(splits) > 1 else ''}: {', '.join(splits)})" if splits else ""
    if len(models) == 1:
        return f"The answers are about {model_short(models[0])}, on {pairs['mask'].nunique():,} pairs{split}."
    return f"The answers compare {_and(list(map(model_short, models)))} on the {_pairs_said(models, pairs)}{split}."


def where_it_works(pairs: pd.DataFrame, models: list[str]) -> Answer:
    """Mean DICE by modality with the lead prompt: the best three modalities and the worst two."""
    strategy = _lead(pairs)
    chosen = pairs[pairs["strategy"] == strategy]
    s = summary(chosen, ["model", "modality"], "dice")
    means = s.pivot(index="modality", columns="model", values="mean").reindex(columns=models)
    order = list(means.mean(axis=1).sort_values(ascending=False).index)
    best, worst = order[:3], order[3:][-2:][::-1]
    if len(order) == 1:
        text = f"{_with(strategy)}, mean DICE on {order[0]} is {_values(means.loc[order[0]])}"
    else:
        text = f"{_with(strategy)}, mean DICE is highest on {_items(means, best)}"
        text += f" and lowest on {_items(means, worst)}" if worst else ""
    text += f" — {_whose(models, chosen)}."
    return Answer(text, panels.fig_where(s, models, order, strategy, _pairs_said(models, chosen)))


def which_prompt(pairs: pd.DataFrame, models: list[str]) -> Answer:
    """Mean DICE per strategy, grouped by what the user gives; the sentence names a box, one click,
    the best clicks and the automatic mode."""
    s = summary(pairs, ["model", "strategy"], "dice")
    means = s.pivot(index="strategy", columns="model", values="mean").reindex(columns=models)
    present = strategy_order(means.index)
    clicks = [st for st in present if STRATEGY_GROUP.get(st) == "click prompts"]
    best_clicks = max(clicks, key=lambda st: means.loc[st].mean()) if clicks else None
    named = [st for st in ("box", "point_center", best_clicks, "everything") if st in present]
    named = list(dict.fromkeys(named)) or present[:1]
    parts = [f"{_name_in_sentence(st)}: {_values(means.loc[st])}" for st in named]
    text = f"Mean DICE, {'; '.join(parts)} — {_whose(models, pairs)}."
    return Answer(text, panels.fig_prompt(s, models, present, _pairs_said(models, pairs)))


def why_it_fails(pairs: pd.DataFrame, models: list[str]) -> Answer:
    """Spearman rho of DICE with boundary complexity and with intensity difference, lead prompt."""
    strategy = _lead(pairs)
    chosen = pairs[pairs["strategy"] == strategy]
    rhos = {column: [spearman(chosen.loc[chosen["model"] == m, column], chosen.loc[chosen["model"] == m, "dice"])[0]
                     for m in models] for column in panels.FAILURE_DESCRIPTORS}
    complexity, contrast = (_trend(rhos[c]) for c in panels.FAILURE_DESCRIPTORS)
    text = (f"{_with(strategy)}, DICE {complexity} with boundary complexity (Spearman ρ = "
            f"{_rhos(rhos['boundary_complexity'])}) and {contrast} with the intensity difference between object "
            f"and surroundings (ρ = {_rhos(rhos['intensity_difference'])}) — {_whose(models, chosen)}.")
    return Answer(text, panels.fig_failure(chosen, models, rhos, strategy, _pairs_said(models, chosen)))


def does_finetuning_help(pairs: pd.DataFrame, models: list[str], published: pd.DataFrame) -> Answer:
    """Each selected 'X_ft' against 'X' on the same pairs (box and the largest gain), beside the
    published mean gains from finetuning (``dice_gain_pct`` rows of published.csv)."""
    gains = published[published["metric"] == "dice_gain_pct"].dropna(subset=["value"])
    deltas = paired_deltas(pairs, models)
    said = [_gain_clause(part) for _, part in deltas.groupby("comparison", sort=False)]
    if not said:
        said = ["No finetuned model is selected with the model it starts from (e.g. litemedsam_ft with litemedsam), "
                "so there is no paired comparison"]
    text = "; ".join(said) + (f"; {_published_gains(gains)}" if len(gains) else "") + "."
    return Answer(text, panels.fig_finetuning(deltas, gains, models))


def paired_deltas(pairs: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """Per strategy, for each 'X_ft' selected with 'X': mean DICE of both on the pairs both have,
    and the mean paired difference with its 95% CI (columns of ``stats.summary`` plus ``base``,
    ``tuned``, ``comparison`` and ``splits``, the splits of the paired rows, e.g. 'test')."""
    out = []
    for tuned in (m for m in models if m.endswith("_ft") and m[:-3] in models):
        base = pairs[pairs["model"] == tuned[:-3]][["strategy", "mask", "split", "dice"]]
        both = base.merge(pairs[pairs["model"] == tuned][["strategy", "mask", "dice"]], on=["strategy", "mask"],
                          suffixes=("_base", "_tuned"))
        both["delta"] = both["dice_tuned"] - both["dice_base"]
        s = summary(both, ["strategy"], "delta").set_index("strategy")
        means = both.groupby("strategy", observed=True)[["dice_base", "dice_tuned"]].mean()
        s = s.join(means).reindex(strategy_order(s.index)).reset_index()
        splits = ", ".join(sorted(map(str, set(both["split"].dropna()))))
        out.append(s.assign(base=tuned[:-3], tuned=tuned, splits=splits,
                            comparison=f"{model_label(tuned)} − {model_label(tuned[:-3])}"))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(
        columns=["strategy", "mean", "std", "count", "ci", "dice_base", "dice_tuned", "base", "tuned", "splits",
                 "comparison"])


def _gain_clause(part: pd.DataFrame) -> str:
    """'Paired on the same 351 test pairs, <tuned> against <base>: change in mean DICE: box −0.004
    (0.773 → 0.769), <the strategy of the largest gain> ...'."""
    first = part.iloc[0]
    named = [s for s in ("box",) if s in set(part["strategy"])]
    largest = part.loc[part["mean"].idxmax(), "strategy"]
    named += [largest] if largest not in named else []
    rows = part.set_index("strategy")
    items = [f"{_name_in_sentence(s)} {_signed(rows.at[s, 'mean'])} ({rows.at[s, 'dice_base']:.3f} → "
             f"{rows.at[s, 'dice_tuned']:.3f})" for s in named]
    split = f" {first.splits}" if first.splits and "," not in first.splits else ""
    return (f"Paired on the same {int(part['count'].max()):,}{split} pairs, {model_label(first.tuned)} against "
            f"{model_label(first.base)}: change in mean DICE: {', '.join(items)}")


def _published_gains(gains: pd.DataFrame) -> str:
    """'published, for comparison: COSMOS paper (...), other models and data: mean DICE gain from
    finetuning on specific tasks +4.39 % (SAM ViT-B) and +6.68 % (SAM ViT-H)'."""
    parts = []
    notes = gains["note"].astype("string").fillna("").replace("", "mean DICE gain")
    for (source, note), part in gains.groupby(["source", notes], sort=False):
        values = _and([f"{v:+g} % ({m})" for m, v in zip(part["model"], part["value"])])
        parts.append(f"{source}, other models and data: {note} {values}")
    return "published, for comparison: " + "; ".join(parts)


def _lead(pairs: pd.DataFrame) -> str:
    present = strategy_order(pairs["strategy"].unique())
    return LEAD_STRATEGY if LEAD_STRATEGY in present else present[0]


def _with(strategy: str) -> str:
    """'With a box', 'With one click at the centre', ..."""
    name = strategy_name(strategy)
    return f"With {'a ' if name.startswith('box') else ''}{name}"


def _name_in_sentence(strategy: str) -> str:
    """The strategy's name; the automatic mode's DICE is that of the best of its masks, so it says so."""
    return "automatic (everything; the best of its masks)" if strategy == "everything" else strategy_name(strategy)


def _values(row: pd.Series) -> str:
    """Numbers per model in sentence order: '0.78 / 0.62' ('–' where a model has none)."""
    return " / ".join("–" if pd.isna(v) else f"{v:.2f}" for v in row)


def _items(means: pd.DataFrame, modalities: list[str]) -> str:
    """'endoscopy 0.94 / 0.93, dermoscopy 0.93 / 0.94 and ultrasound 0.92 / 0.92'."""
    return _and([f"{m} {_values(means.loc[m])}" for m in modalities])


def _and(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _signed(value: float) -> str:
    """'+0.578', '−0.004' (a minus sign, not a hyphen)."""
    return f"{value:+.3f}".replace("-", "−")


def _rhos(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}".replace("-", "−") if np.isfinite(v) else "undefined" for v in values)


def _trend(rhos: list[float]) -> str:
    """'falls', 'rises' or 'hardly changes', by the mean rho over models."""
    finite = [r for r in rhos if np.isfinite(r)]
    mean = float(np.mean(finite)) if finite else 0.0
    return "falls" if mean <= -TREND else "rises" if mean >= TREND else "hardly changes"


def _pairs_said(models: list[str], pairs: pd.DataFrame) -> str:
    """'643 pairs' or '351 pairs both models were run on'."""
    n = pairs["mask"].nunique()
    return f"{n:,} pairs" + ("" if len(models) == 1 else f" {'both' if len(models) == 2 else 'all'} models were run on")


def _whose(models: list[str], pairs: pd.DataFrame) -> str:
    """'LiteMedSAM, 643 pairs' or 'LiteMedSAM / our finetune, 351 pairs' (short names, in the order
    of the numbers)."""
    return f"{' / '.join(map(model_short, models))}, {pairs['mask'].nunique():,} pairs"
