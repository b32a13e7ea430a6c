"""The Dashboard's names for strategies and models, and its four answers: the sentences on the
committed results are checked against numbers computed here, by hand, from the CSVs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from medsam import dashboard as d
from medsam.dashboard import names
from medsam.dashboard.answers import QUESTIONS, build_answers
from medsam.dashboard.style import NOTHING
from medsam.strategies import GROUPS

RESULTS = Path(__file__).resolve().parents[1] / "results"
BASE, TUNED = "litemedsam", "litemedsam_ft"
CLICKS = ["point_center", "point_random", "points_5pos", "points_5pos5neg", "interactive"]


# --- names -----------------------------------------------------------------------------------


def test_every_benchmark_strategy_has_a_plain_name() -> None:
    from medsam.prompts import STRATEGIES

    assert set(d.STRATEGY_ORDER) == set(STRATEGIES)
    shown = [d.strategy_name(s) for s in d.STRATEGY_ORDER]
    assert len(set(shown)) == len(shown)
    assert not (set(shown) & set(STRATEGIES)) - {"box"}, "plain words, not the benchmark's names"
    assert d.strategy_name("box_jitter_20") == "box jittered 10-20 px"
    assert d.strategy_name("points_5pos5neg") == "5 positive + 5 negative clicks"
    assert d.strategy_name("point_center") == "one click at the centre"
    assert d.strategy_name("everything") == "automatic (everything)"
    assert d.strategy_name("a_new_strategy") == "a_new_strategy"
    groups = [names.STRATEGY_GROUP[s] for s in d.STRATEGY_ORDER]
    assert groups == sorted(groups, key=list(GROUPS).index), "boxes, then clicks, then no prompt"


def test_models_are_named_for_what_they_are() -> None:
    from medsam.models import REGISTRY

    assert set(REGISTRY) <= set(names.MODEL_NAMES)
    assert d.model_label(BASE) == "LiteMedSAM as published (medical)"
    assert d.model_label(TUNED) == "LiteMedSAM + our decoder finetune (litemedsam_ft)"
    assert d.model_label("medsam_vit_b") == "MedSAM (SAM finetuned on medical images)"
    assert all(d.model_label(m).endswith("(zero-shot)") for m in ("sam_vit_b", "sam_vit_l", "sam_vit_h", "mobilesam"))
    assert not any("zero-shot" in d.model_label(m) for m in (BASE, TUNED, "medsam_vit_b"))
    assert d.model_order([TUNED, "zz_model", BASE, "sam_vit_b"]) == ["sam_vit_b", BASE, TUNED, "zz_model"]


# --- the answers on the committed results ------------------------------------------------------


@pytest.fixture(scope="module")
def answers() -> tuple[str, dict]:
    results = d.load_results(RESULTS)
    return build_answers(results.benchmark, results.published)


@pytest.fixture(scope="module")
def by_hand() -> pd.DataFrame:
    """benchmark.csv by hand: per (model, strategy, pair) mean DICE over seeds, on the pairs both
    LiteMedSAM and litemedsam_ft were run on."""
    raw = pd.read_csv(RESULTS / "benchmark.csv", low_memory=False)
    pairs = raw.groupby(["model", "strategy", "mask"], as_index=False).agg(
        dice=("dice", "mean"), modality=("modality", "first"), complexity=("boundary_complexity", "first"),
        contrast=("intensity_difference", "first"))
    both = set(raw.loc[raw["model"] == BASE, "mask"]) & set(raw.loc[raw["model"] == TUNED, "mask"])
    return pairs[pairs["mask"].isin(both)]


def _means(table: pd.DataFrame, by: str) -> pd.DataFrame:
    return table.groupby([by, "model"])["dice"].mean().unstack()[[BASE, TUNED]]


def _two(means: pd.DataFrame, key: str) -> str:
    return f"{means.loc[key, BASE]:.2f} / {means.loc[key, TUNED]:.2f}"


def test_answers_compare_the_models_on_the_pairs_both_were_run_on(answers, by_hand: pd.DataFrame) -> None:
    compared, _ = answers
    n = by_hand["mask"].nunique()
    assert n == 351  # litemedsam_ft was run on the test split only
    assert compared == f"The answers compare LiteMedSAM and our finetune on the {n} pairs both models were run on " \
                       "(split: test)."


def test_where_it_works(answers, by_hand: pd.DataFrame) -> None:
    means = _means(by_hand[by_hand["strategy"] == "box"], "modality")
    order = list(means.mean(axis=1).sort_values(ascending=False).index)
    top, bottom = [f"{m} {_two(means, m)}" for m in order[:3]], [f"{m} {_two(means, m)}" for m in order[::-1][:2]]
    assert answers[1]["where"].text == (
        f"With a box, mean DICE is highest on {top[0]}, {top[1]} and {top[2]} and lowest on {bottom[0]} and "
        f"{bottom[1]} — LiteMedSAM / our finetune, 351 pairs.")


def test_which_prompt(answers, by_hand: pd.DataFrame) -> None:
    means = _means(by_hand, "strategy")
    best_clicks = means.loc[CLICKS].mean(axis=1).idxmax()
    assert answers[1]["prompt"].text == (
        f"Mean DICE, box: {_two(means, 'box')}; one click at the centre: {_two(means, 'point_center')}; "
        f"{d.strategy_name(best_clicks)}: {_two(means, best_clicks)}; automatic (everything; the best of its masks): "
        f"{_two(means, 'everything')} — LiteMedSAM / our finetune, 351 pairs.")
    assert means.loc["point_center", BASE] < 0.1 < 0.5 < means.loc["point_center", TUNED]  # clicks need the finetune


def test_why_it_fails(answers, by_hand: pd.DataFrame) -> None:
    box = by_hand[by_hand["strategy"] == "box"]
    rho = {(m, c): stats.spearmanr(box.loc[box["model"] == m, c], box.loc[box["model"] == m, "dice"]).statistic
           for m in (BASE, TUNED) for c in ("complexity", "contrast")}
    models = (BASE, TUNED)
    assert max(rho[m, "complexity"] for m in models) < -0.1 < 0.1 < min(rho[m, "contrast"] for m in models)

    def two(c: str) -> str:
        return f"{rho[BASE, c]:.2f} / {rho[TUNED, c]:.2f}".replace("-", "−")

    assert answers[1]["failure"].text == (
        f"With a box, DICE falls with boundary complexity (Spearman ρ = {two('complexity')}) and rises with the "
        f"intensity difference between object and surroundings (ρ = {two('contrast')}) — LiteMedSAM / our finetune, "
        "351 pairs.")
    titles = [a.text.replace("<br>", " ") for a in answers[1]["failure"].figure.layout.annotations]
    assert f"{rho[BASE, 'complexity']:.2f} (LiteMedSAM), {rho[TUNED, 'complexity']:.2f} (our finetune)".replace(
        "-", "−") in titles[0]


def test_does_finetuning_help(answers, by_hand: pd.DataFrame) -> None:
    wide = by_hand.pivot_table(index=["strategy", "mask"], columns="model", values="dice").dropna()
    delta = (wide[TUNED] - wide[BASE]).groupby("strategy").mean()
    base, tuned = wide[BASE].groupby("strategy").mean(), wide[TUNED].groupby("strategy").mean()
    largest = delta.idxmax()

    def said(s: str) -> str:
        return f"{d.strategy_name(s)} {delta[s]:+.3f} ({base[s]:.3f} → {tuned[s]:.3f})".replace("-", "−", 1)

    published = pd.read_csv(RESULTS / "published.csv")
    gains = published[published["metric"] == "dice_gain_pct"]
    assert sorted(gains["value"]) == [4.39, 6.68]
    source, note = gains["source"].iloc[0], gains["note"].iloc[0]
    assert answers[1]["finetuning"].text == (
        "Paired on the same 351 test pairs, LiteMedSAM + our decoder finetune (litemedsam_ft) against LiteMedSAM as "
        f"published (medical): change in mean DICE: {said('box')}, {said(largest)}; published, for comparison: "
        f"{source}, other models and data: {note} +4.39 % (SAM ViT-B) and +6.68 % (SAM ViT-H).")
    fig = answers[1]["finetuning"].figure
    ours = next(t for t in fig.data if t.name.startswith("ours: "))
    assert dict(zip(ours.customdata[:, 2], ours.x))["box"] == pytest.approx(delta["box"])
    (pub,) = [t for t in fig.data if t.name.startswith("published: ")]
    assert list(pub.x) == pytest.approx([0.0439, 0.0668]) and pub.marker.pattern.shape == "/"
    assert all(y.startswith("published: ") for y in pub.y)
    assert not set(np.round(ours.x, 6)) & {0.0439, 0.0668}


def test_panel_figures_follow_the_answers(answers, by_hand: pd.DataFrame) -> None:
    where = answers[1]["where"].figure
    assert [t.name.replace("<br>", " ") for t in where.data] == [d.model_label(TUNED), d.model_label(BASE)]
    means = _means(by_hand[by_hand["strategy"] == "box"], "modality")
    bars = dict(zip(where.data[1].y, where.data[1].x))
    assert bars == pytest.approx(means[BASE].to_dict())
    assert list(where.layout.yaxis.categoryarray)[-1] == means.mean(axis=1).idxmax()  # the best at the top
    prompt = answers[1]["prompt"].figure
    assert [a.text for a in prompt.layout.annotations] == list(GROUPS)
    raw = {c[2] for t in prompt.data for c in t.customdata}
    assert raw == set(d.STRATEGY_ORDER) and "benchmark name" in prompt.data[0].hovertemplate


# --- the answers on other selections ----------------------------------------------------------


def test_one_model_no_finetuning_pair_and_nothing_selected() -> None:
    results = d.load_results(RESULTS)
    alone = d.filter_rows(results.benchmark, models=[BASE], strategies=["box", "point_center"])
    compared, answers = build_answers(alone, results.published)
    n = alone["mask"].nunique()
    assert compared == f"The answers are about LiteMedSAM, on {n} pairs (splits: test, train)."
    assert answers["prompt"].text.endswith(f"— LiteMedSAM, {n} pairs.") and " / " not in answers["prompt"].text
    assert answers["finetuning"].text.startswith("No finetuned model is selected with the model it starts from")
    assert "published, for comparison: COSMOS paper" in answers["finetuning"].text
    one = d.filter_rows(results.benchmark, modalities=["octa"], strategies=["box"], models=[BASE])
    box = one.groupby("mask")["dice"].mean().mean()
    assert build_answers(one, results.published)[1]["where"].text.startswith(
        f"With a box, mean DICE on octa is {box:.2f} — ")
    compared, answers = build_answers(d.filter_rows(results.benchmark, modalities=[]), results.published)
    assert compared == NOTHING and set(answers) == set(QUESTIONS)
    assert all(a.text == NOTHING and "Nothing to show" in a.figure.layout.title.text for a in answers.values())
