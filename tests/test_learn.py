"""The Learn tab: lessons' experiments, the endpoints behind them, exercises and shared links."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medsam.errors import InputError
from medsam.gallery import bundled_examples
from medsam.learn import experiments as ex
from medsam.learn import measured
from medsam.learn.endpoints import clicks_to_target, prompt_sensitivity
from medsam.learn.lessons import BY_KEY, LESSONS, Context, target_of
from medsam.prompts import jitter_box, rng_for

EXAMPLES = {e.id: e for e in bundled_examples()}
LIVER = EXAMPLES["amos_0006_90__liver"]


def test_every_lesson_names_a_bundled_example_and_says_what_we_measured() -> None:
    assert len(LESSONS) == 9 and len(BY_KEY) == 9
    for lesson in LESSONS:
        assert lesson.example in EXAMPLES, lesson.key
        assert lesson.finding and lesson.question.endswith("?")
        assert "**Ours**" in lesson.measured(), lesson.key
    assert "**Published**" in BY_KEY["finetuning"].measured() and "4.39" in BY_KEY["finetuning"].measured()


def test_measured_figures_match_the_results_files() -> None:
    rows = measured.benchmark()
    box = rows[(rows.model == "litemedsam") & (rows.strategy == "box")]["dice"].mean()
    assert f"box {box:.2f}" in measured.by_prompt()
    summary = measured.table("finetune_summary.csv").set_index("strategy")
    noc85 = summary.loc["interactive", "noc85_litemedsam_ft"]
    assert f"{noc85:.1f} with our decoder finetune" in measured.clicks_text()


def test_jittered_boxes_are_the_benchmarks_jitter_seeded() -> None:
    target = target_of(LIVER)
    drawn, trials = ex.jittered_boxes(target, "litemedsam", 20, 4, seed=3)
    rng = rng_for(3, target.key, "box_jitter_20")
    expected = [jitter_box(target.box, 10, 20, rng, target.gt.shape)[0] for _ in range(4)]
    assert all(np.array_equal(t.prompt.box, b) for t, b in zip(trials, expected))
    assert drawn.group == "box as drawn" and np.array_equal(drawn.prompt.box, target.box)
    again = ex.jittered_boxes(target, "litemedsam", 20, 4, seed=3)[1]
    assert [t.dice for t in again] == [t.dice for t in trials]


def test_sensitivity_groups_and_counts() -> None:
    trials = ex.sensitivity(target_of(LIVER), "litemedsam_ft", n=3)
    groups = [t.group for t in trials]
    assert groups.count("centre click") == 1 and groups.count("random click") == 3
    assert groups.count("box jittered 20-30 px") == 3 and all(0 <= t.dice <= 1 for t in trials)


def test_candidates_carry_predicted_and_true_iou() -> None:
    trials = ex.candidates(target_of(LIVER), "litemedsam_ft")
    assert len(trials) == 3
    assert all(0 <= t.extra["true_iou"] <= 1 and np.isfinite(t.extra["predicted_iou"]) for t in trials)


@pytest.mark.parametrize("key", [lesson.key for lesson in LESSONS])
def test_each_lesson_runs_on_its_example(key: str) -> None:
    lesson = BY_KEY[key]
    example = EXAMPLES[lesson.example]
    outcome = lesson.run(Context(target_of(example), "litemedsam_ft", EXAMPLES, example, n=3))
    assert outcome.figure.data and outcome.pictures and outcome.text
    assert all(rgb.ndim == 3 and rgb.shape[2] == 3 for rgb, _ in outcome.pictures)


def test_prompt_sensitivity_endpoint() -> None:
    out = prompt_sensitivity(LIVER.image, LIVER.mask, "litemedsam", json.dumps(list(LIVER.box)), 30, 5)
    assert len(out["dice"]) == 5 == len(out["boxes"]) and out["jitter_px"] == [20.0, 30.0]
    assert out["dice_unjittered"] > max(out["dice"]) - 0.2 and all(0 <= d <= 1 for d in out["dice"])
    assert out == {**prompt_sensitivity(LIVER.image, LIVER.mask, "litemedsam", json.dumps(list(LIVER.box)), 30, 5),
                   "seconds": out["seconds"]}, "seeded: the same request gives the same draws"


def test_clicks_to_target_endpoint() -> None:
    out = clicks_to_target(LIVER.image, LIVER.mask, "litemedsam_ft", 6)
    assert 1 <= len(out["dice_per_click"]) <= 6 and len(out["clicks"]) == len(out["dice_per_click"])
    reached = [i + 1 for i, d in enumerate(out["dice_per_click"]) if d >= 0.85]
    assert out["noc85"] == (reached[0] if reached else None)


@pytest.mark.parametrize("call, message", [
    (lambda: prompt_sensitivity(LIVER.image, None, "litemedsam", "[1, 1, 50, 50]", 20, 5), "ground-truth mask"),
    (lambda: prompt_sensitivity(LIVER.image, LIVER.mask, "litemedsam", "[1, 1, 50]", 20, 5), "four finite numbers"),
    (lambda: prompt_sensitivity(LIVER.image, LIVER.mask, "litemedsam", "[1, 1, 5000, 50]", 20, 5), "inside the"),
    (lambda: prompt_sensitivity(LIVER.image, LIVER.mask, "litemedsam", "[1, 1, 50, 50]", 0, 5), "jitter must be"),
    (lambda: prompt_sensitivity(LIVER.image, LIVER.mask, "litemedsam", "[1, 1, 50, 50]", 20, 500), "repetitions"),
    (lambda: clicks_to_target(LIVER.image, LIVER.mask, "litemedsam", 0), "clicks must be"),
    (lambda: clicks_to_target(LIVER.image, LIVER.mask, "nope", 5), "Unknown model"),
])
def test_endpoint_bad_input_is_one_sentence(call, message: str) -> None:
    with pytest.raises(Exception) as err:
        call()
    assert message in str(err.value) and "Traceback" not in str(err.value)
    assert isinstance(err.value, InputError) or type(err.value).__name__ == "MedsamError"
