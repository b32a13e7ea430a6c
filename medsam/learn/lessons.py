"""The Learn tab's lessons: one finding each, as text, our measured figure, a live experiment and a question.

A ``Lesson`` names its default example (an ``Example.id`` of the bundled gallery) and a ``run``
function from a ``Context`` (the target, the chosen model, the examples) to an ``Outcome``: a plotly
figure, pictures (RGB arrays with captions) and one sentence on what happened. COSMOS findings are
numbered as in Huang et al., "Segment Anything Model for Medical Images?" (MedIA 2024); the last
lesson is AutoSAM (Hu, Xu, Shi). Published figures are always introduced as published.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go

from .. import heads, visualize
from ..errors import MedsamError
from ..gallery import Example
from ..model_notes import availability
from ..models import REGISTRY
from ..service import head_label, segment_with_head
from ..session import Session
from . import experiments as ex
from . import figures, measured

BASE, FINETUNED = "litemedsam", "litemedsam_ft"
SAM_SIZES = ("sam_vit_b", "sam_vit_l", "sam_vit_h")


@dataclass
class Context:
    """What a lesson runs on: the target, the chosen model, and the gallery (by id) for fixed examples."""

    target: ex.Target
    model: str
    examples: dict[str, Example]
    example: Example | None = None
    n: int = 8


@dataclass
class Outcome:
    figure: go.Figure
    pictures: list[tuple[np.ndarray, str]] = field(default_factory=list)
    text: str = ""


@dataclass(frozen=True)
class Lesson:
    key: str  # for links: ?lesson=<key>
    title: str
    finding: str
    measured: Callable[[], str]
    dashboard: str  # where the Dashboard shows our full figures
    question: str
    example: str  # the default example's id
    run: Callable[[Context], Outcome]
    button: str = "Run the experiment"


def target_of(example: Example) -> ex.Target:
    s = Session()
    s.open_example(example)
    return ex.Target.make(s.rgb, s.gt, s.box)


def picture(target: ex.Target, trial: ex.Trial) -> tuple[np.ndarray, str]:
    """The trial's mask over the image, the ground truth outlined and its prompt drawn."""
    p = trial.prompt
    points = [] if p is None or p.points is None else [tuple(xy) for xy in p.points]
    labels = [] if p is None or p.labels is None else [int(v) for v in p.labels]
    box = None if p is None or p.box is None else tuple(p.box)
    rgb = visualize.draw_prompts(visualize.overlay(target.rgb, trial.mask, outline=target.gt), points, labels, box)
    return rgb, f"{trial.group}: DICE {trial.dice:.2f}"


def _title(model: str) -> str:
    return REGISTRY[model].title.split(" (")[0]


def run_same_prompt(ctx: Context) -> Outcome:
    ids = ["spleen_10021_spleen_3__spleen", "scd_p7__lv_myocardium", "msflair_113021__ms_lesions"]
    named = [(ctx.examples[i].label, target_of(ctx.examples[i])) for i in ids if i in ctx.examples]
    trials = ex.same_prompt(named, ctx.model)
    targets = dict(named)
    return Outcome(figures.dice_bars(trials, f"One tight box each, {_title(ctx.model)}"),
                   [picture(targets[t.group], t) for t in trials],
                   "The same kind of prompt: " + "; ".join(f"{t.group} {t.dice:.2f}" for t in trials) + ".")


def run_sizes(ctx: Context) -> Outcome:
    ready = [m for m in SAM_SIZES if availability(m) != "missing"]
    models = ready if len(ready) >= 2 else [m for m in (BASE, FINETUNED) if availability(m) == "ready"]
    trials = [ex.same_prompt([(f"{REGISTRY[m].encoder} ({m})", ctx.target)], m)[0] for m in models]
    note = "" if len(ready) >= 2 else (
        "SAM ViT-B, ViT-L and ViT-H are not on this machine, so the size comparison is not live here: put "
        + ", ".join(f"`{REGISTRY[m].checkpoint.filename}`" for m in SAM_SIZES)
        + " in the checkpoint folder (or start with `MEDSAM_DOWNLOAD=1` online) and run this again. Shown instead: "
          "the two ready models, which share one small encoder (TinyViT-5M). ")
    return Outcome(figures.dice_bars(trials, "One tight box, by image encoder"),
                   [picture(ctx.target, t) for t in trials],
                   note + "; ".join(f"{t.group}: DICE {t.dice:.2f}" for t in trials))


def run_prompt_types(ctx: Context) -> Outcome:
    trials = ex.prompt_types(ctx.target, ctx.model)
    auto = trials[-1].extra
    return Outcome(figures.dice_bars(trials, f"Box, clicks and everything mode, {_title(ctx.model)}"),
                   [picture(ctx.target, t) for t in trials],
                   "; ".join(f"{t.group} {t.dice:.2f}" for t in trials)
                   + f" (everything mode made {auto['masks']} masks in {auto['seconds']:.1f} s).")


def run_sensitivity(ctx: Context) -> Outcome:
    trials = ex.sensitivity(ctx.target, ctx.model, ctx.n)
    boxes = [t for t in trials if t.group.startswith("box jittered")]
    clicks = [t for t in trials if t.group.endswith("click")]
    show = [min(clicks, key=lambda t: t.dice), max(boxes, key=lambda t: t.dice), min(boxes, key=lambda t: t.dice)]
    caption = ["worst click", "best jittered box", "worst jittered box"]
    return Outcome(figures.strip(trials, f"{ctx.n} draws per prompt, {_title(ctx.model)}"),
                   [(p, f"{c}: {t}") for (p, t), c in zip((picture(ctx.target, t) for t in show), caption)],
                   f"DICE from {min(t.dice for t in trials):.2f} to {max(t.dice for t in trials):.2f} for prompts "
                   f"that differ by a few pixels.")


def run_clicks(ctx: Context) -> Outcome:
    runs = ex.clicks_to_target(ctx.target, [BASE, FINETUNED])
    parts = [f"{_title(m)}: " + ", ".join(f"NoC@{int(th * 100)} {r.clicks_to(th) or 'not reached'}"
                                            for th in (0.85, 0.90)) for m, r in runs.items()]
    pictures = [picture(ctx.target, ex.Trial(f"{_title(m)} after {len(r.dice_per_click)} clicks", r.last.masks[0],
                                              r.dice_per_click[-1], ex.Prompt(np.array(r.points), np.array(r.labels))))
                for m, r in runs.items()]
    return Outcome(figures.click_curves({_title(m): r.dice_per_click for m, r in runs.items()},
                                        "DICE after each simulated click"), pictures, "; ".join(parts) + ".")


def run_descriptors(ctx: Context) -> Outcome:
    point = ex.descriptors(ctx.target, ctx.model)
    rows = measured.benchmark()
    rows = rows[(rows["model"] == ctx.model) & (rows["strategy"] == "box")]
    box = ex.same_prompt([("this target, a tight box", ctx.target)], ctx.model)[0]
    return Outcome(figures.on_scatter(rows, "boundary_complexity", point, "DICE against boundary complexity"),
                   [picture(ctx.target, box)],
                   f"This target: boundary complexity {point['boundary_complexity']:.2f}, intensity difference "
                   f"{point['intensity_difference']:.2f}, {point['relative_size']:.1%} of the image; "
                   f"DICE {point['dice']:.2f}.")


def run_finetune(ctx: Context) -> Outcome:
    trials = ex.finetuned_vs_base(ctx.target, BASE, FINETUNED)
    for t in trials:
        t.extra["model"] = _title(t.extra["model"])
    return Outcome(figures.dice_bars(trials, "The same prompts, before and after our decoder finetune", by="model"),
                   [(p, f"{t.extra['model']}, {c}") for t in trials for p, c in [picture(ctx.target, t)]],
                   "; ".join(f"{t.extra['model']}, {t.group}: {t.dice:.2f}" for t in trials) + ".")


def run_candidates(ctx: Context) -> Outcome:
    trials = ex.candidates(ctx.target, ctx.model)
    best = max(trials, key=lambda t: t.dice)
    return Outcome(figures.iou_scatter(trials, f"One centre click: SAM's three candidates, {_title(ctx.model)}"),
                   [(p, f"{c} · predicted IoU {t.extra['predicted_iou']:.2f}, true {t.extra['true_iou']:.2f}")
                    for t in trials for p, c in [picture(ctx.target, t)]],
                   f"The model shows candidate 1 (DICE {trials[0].dice:.2f}); the best would be {best.group} "
                   f"(DICE {best.dice:.2f}).")


def run_head(ctx: Context) -> Outcome:
    found = heads.find_heads()
    if not found:
        raise MedsamError("No prompt-free head is saved on this machine.")
    label = _head_for(ctx.example, found)
    labels, note = segment_with_head(found[label], ctx.target.rgb, ctx.target.gt,
                                     ctx.example.modality if ctx.example else None)
    from ..dashboard import fig_label_efficiency  # the same curve as the Dashboard's

    fig = fig_label_efficiency(measured.table("label_efficiency.csv"))
    fig.update_layout(height=figures.HEIGHT + 80)
    return Outcome(fig, [(visualize.label_colors(labels, ctx.target.rgb), f"{label} ({head_label(found[label])})")],
                   note)


def _head_for(example: Example | None, found: dict) -> str:
    """The head trained on this example's dataset (its image name starts with the dataset's), else the first."""
    name = example.image.name if example else ""
    return next((label for label in found if name.startswith(label.split(":")[0])), next(iter(found)))


LESSONS = [
    Lesson("objects", "1. Strong on some objects, fails on others",
           "With the same kind of prompt, SAM segments some medical objects almost perfectly and fails on others "
           "(COSMOS, finding 1): large compact organs are easy; rings, thin and scattered structures are not.",
           measured.strong_and_weak, "Where does it work?",
           "What do the failures have in common? Would a different prompt rescue them?",
           "spleen_10021_spleen_3__spleen", run_same_prompt),
    Lesson("encoder-size", "2. Larger image encoders do better",
           "COSMOS found SAM's larger encoders (ViT-L, ViT-H) ahead of ViT-B on medical images, at a large cost in "
           "compute: ViT-H's image encoder has 637M parameters, ViT-L's 308M, ViT-B's 90M (LiteMedSAM's 5M).",
           measured.encoder_sizes_text, "Where does it work? (filter by model)",
           "Is a few points of DICE worth a minute per image on a laptop?",
           "amos_0006_90__liver", run_sizes),
    Lesson("prompt-types", "3. Boxes beat points, points beat everything mode",
           "A box tells SAM where the object ends; a click only where it is; the automatic mode knows neither "
           "(COSMOS, finding 3).", measured.by_prompt, "Which prompt?",
           "Why does one click do so much worse than a box on this image?",
           "busi_malignant_17__breast_tumor", run_prompt_types),
    Lesson("prompt-sensitivity", "4. Sensitive to where you click and how you draw",
           "SAM's answer changes with a random click inside the object instead of the centre, and with a box moved "
           "by 10-30 px (COSMOS, finding 4): the benchmark jitters each edge by 0-10, 10-20 or 20-30 px.",
           measured.sensitivity_text, "Which prompt? (jittered boxes)",
           "Which is more robust here, the clicks or the box? What would you tell an annotator?",
           "amos_0006_90__liver", run_sensitivity),
    Lesson("annotation-effort", "5. Few clicks, then overtaken",
           "SAM beats classic interactive methods at one or a few clicks, but gains little from more clicks, so they "
           "overtake it (COSMOS, finding 5). Here: a simulated annotator clicks where the mask is most wrong.",
           measured.clicks_text, "Which prompt? (interactive)",
           "How many clicks would you need by hand? When would you stop clicking?",
           "hipxray_image_130__proximal_femur", run_clicks),
    Lesson("boundary-complexity", "6. Complex boundaries and low contrast are hard",
           "SAM's DICE falls with the object's boundary complexity and rises with its contrast to the surroundings "
           "(COSMOS, finding 6).", measured.complexity_text, "Why does it fail?",
           "Where does this target sit among the benchmark's? What makes its boundary complex?",
           "scd_p7__lv_myocardium", run_descriptors),
    Lesson("finetuning", "7. Finetuning on the task helps",
           "Finetuning SAM on a task raised mean DICE by 4.39 % (ViT-B) and 6.68 % (ViT-H) in COSMOS. Our own "
           "finetune trains only LiteMedSAM's prompt encoder and mask decoder, with clicks as well as boxes.",
           measured.finetune_text, "Does finetuning help?",
           "Which prompts gain most from finetuning, and why those?",
           "amos_0006_90__inferior_vena_cava", run_finetune),
    Lesson("candidates", "8. Which of the three masks?",
           "For an ambiguous prompt SAM returns three candidate masks and its own estimate of each one's IoU. "
           "Benchmarks that score the best candidate (the oracle) overstate what a user gets from the top-ranked one.",
           measured.candidates_text, "Which prompt? (oracle gap)",
           "Should a tool show the top-ranked mask or all three? Who should choose?",
           "busi_malignant_17__breast_tumor", run_candidates),
    Lesson("prompt-free-heads", "9. No prompts at all: light heads on a frozen encoder (AutoSAM)",
           "AutoSAM freezes SAM's image encoder and trains a light head that segments a dataset's classes with no "
           "prompt; with very few labelled images it beats a network trained from scratch.",
           measured.heads_text, "Does finetuning help? (label efficiency)",
           "What would you lose by using a head trained on another hospital's images?",
           "hc18_805_hc__fetal_head", run_head, button="Run the saved head"),
]
BY_KEY = {lesson.key: lesson for lesson in LESSONS}
