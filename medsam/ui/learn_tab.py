"""The Learn tab: the studies' findings as lessons a lecturer runs live, and scored exercises.

Layout and wiring only: lesson content and experiments are in ``medsam.learn``. A link opens a
lesson or an exercise on an example: ``?lesson=<key>&example=<example id>`` or ``?exercise=<example
id>`` (ids as ``Example.id``, e.g. ``amos_0006_90__liver``). Nothing runs a model until a button is
pressed; the experiments share the app's model queue (``MODEL_WORK``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr

from .. import visualize
from ..errors import MedsamError
from ..gallery import Example
from ..learn.experiments import Target
from ..learn.lessons import BY_KEY, LESSONS, Context, Lesson
from ..model_notes import availability
from ..models import REGISTRY
from ..session import MODES, Session
from .common import MODEL_WORK, PRIVATE, picture, plain_errors

SEGMENT_TAB = "segment"  # the example choice that means "the image open in the Segment tab"
INTRO = ("**For a class:** each lesson states one finding of the COSMOS study (Huang et al., *Segment Anything "
         "Model for Medical Images?*, MedIA 2024) or of AutoSAM, shows what our benchmark measured, and runs it live "
         "on an example with one click. The *Exercise* tab hides an example's ground truth until a student asks to "
         "be scored. Share a lesson with `?lesson=<name>&example=<id>` or an exercise with `?exercise=<id>`.")


def lesson_text(lesson: Lesson) -> tuple[str, str, str]:
    """(finding, what was measured, question) as Markdown."""
    return (f"### {lesson.title}\n{lesson.finding}",
            f"{lesson.measured()}  \n*Full figures: the Dashboard's \"{lesson.dashboard}\" panel.*",
            f"**Question for the class:** {lesson.question}")


@dataclass
class Exercise:
    """A student's attempt: the session (ground truth loaded, not shown), clicks made, scored or not."""

    session: Session = field(default_factory=Session)
    example: Example | None = None
    clicks: int = 0
    scored: bool = False


class LearnTab:
    """The Learn tab's components; build inside ``with gr.Tab(...)``, then ``wire(demo, tabs)``."""

    def __init__(self, examples: list[Example]) -> None:
        self.examples = {ex.id: ex for ex in examples if ex.bundled}
        ready = [name for name in REGISTRY if availability(name) == "ready"]
        self.model_default = "litemedsam_ft" if "litemedsam_ft" in ready else ready[0]
        first = LESSONS[0]
        finding, measured, question = lesson_text(first)
        gr.Markdown(INTRO)
        with gr.Tabs() as self.inner:
            with gr.Tab("Lessons", id="lessons"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=260):
                        self.lesson = gr.Radio([(x.title, x.key) for x in LESSONS], value=first.key, label="Lesson",
                                               elem_id="lesson")
                        self.model = gr.Dropdown([(REGISTRY[m].title, m) for m in ready], value=self.model_default,
                                                 label="Model", elem_id="lesson-model")
                        self.example = gr.Dropdown(self._example_choices(), value=first.example,
                                                   label="Run on", elem_id="lesson-example")
                        self.n = gr.Slider(2, 20, value=8, step=1, label="Draws per prompt (lesson 4)")
                    with gr.Column(scale=3):
                        self.finding = gr.Markdown(finding, elem_id="lesson-finding")
                        self.measured = gr.Markdown(measured, elem_id="lesson-measured")
                        self.run = gr.Button(first.button, variant="primary", elem_id="lesson-run")
                        self.status = gr.Markdown("", elem_id="lesson-status")
                        self.plot = gr.Plot(show_label=False, elem_id="lesson-plot")
                        self.pictures = gr.Gallery(columns=3, height=300, allow_preview=True, show_label=False,
                                                   elem_id="lesson-pictures")
                        self.question = gr.Markdown(question, elem_id="lesson-question")
            with gr.Tab("Exercise", id="exercise"):
                self._exercise()

    def _example_choices(self) -> list[tuple[str, str]]:
        return [("The image open in the Segment tab (with its mask)", SEGMENT_TAB),
                *((f"{ex.modality_name}: {ex.label}", key) for key, ex in self.examples.items())]

    def _exercise(self) -> None:
        self.exercise = gr.State(None)
        flat = [(f"{ex.modality_name}: {ex.label}", key) for key, ex in self.examples.items() if not ex.is_volume]
        gr.Markdown("Segment the object named below as well as you can, with as few clicks as possible; then press "
                    "**Score me**: the ground truth is shown with your DICE, HD95 and clicks.")
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                self.ex_example = gr.Dropdown(flat, value=flat[0][1], label="Example", elem_id="exercise-example")
                self.ex_start = gr.Button("Start", elem_id="exercise-start")
                self.ex_mode = gr.Radio(list(MODES), value=MODES[2], label="Click adds", elem_id="exercise-mode")
                with gr.Row():
                    self.ex_undo = gr.Button("Undo")
                    self.ex_clear = gr.Button("Clear", elem_id="exercise-clear")
                self.ex_score = gr.Button("Score me", variant="primary", elem_id="exercise-score")
            with gr.Column(scale=2):
                self.ex_status = gr.Markdown("Press **Start**.", elem_id="exercise-status")
                self.ex_canvas = gr.Image(label="Click to prompt", interactive=False, type="numpy",
                                          elem_id="exercise-canvas")

    # --- lessons ------------------------------------------------------------------------------
    def context(self, key: str, model: str, n: float, segment: Session | None) -> Context:
        if key == SEGMENT_TAB:
            if segment is None or segment.rgb is None or segment.gt is None:
                raise MedsamError("The Segment tab has no image with a ground-truth mask open: pick an example there "
                                  "or here, or load a mask.")
            return Context(Target.make(segment.rgb, segment.gt, segment.box), model, self.examples, segment.example,
                           int(n))
        example = self.examples.get(key)
        if example is None:
            raise MedsamError("Choose an example to run the lesson on.")
        s = Session()
        s.open_example(example)
        return Context(Target.make(s.rgb, s.gt, s.box), model, self.examples, example, int(n))

    def on_lesson(self, key: str) -> dict:
        lesson = BY_KEY[key]
        finding, measured, question = lesson_text(lesson)
        return {self.finding: finding, self.measured: measured, self.question: question,
                self.run: gr.update(value=lesson.button), self.example: gr.update(value=lesson.example),
                self.plot: None, self.pictures: [], self.status: ""}

    def on_run(self, key: str, model: str, example: str, n: float, segment: Session | None,
               progress=gr.Progress()) -> dict:
        progress(0, desc="Running the experiment")
        outcome = BY_KEY[key].run(self.context(example, model, n, segment))
        return {self.plot: outcome.figure,
                self.pictures: [(picture(rgb), caption) for rgb, caption in outcome.pictures],
                self.status: f"**Result:** {outcome.text}"}

    # --- exercise -------------------------------------------------------------------------------
    def exercise_view(self, state: Exercise, model: str) -> dict:
        s = state.session
        run = s.runs[0] if s.runs else None
        shown = visualize.overlay(s.rgb, run.mask if run else None, outline=s.gt if state.scored else None)
        canvas = picture(visualize.draw_prompts(shown, s.points, s.labels, s.box, s.corner))
        ex = state.example
        lines = [f"**Segment:** {ex.object.replace('_', ' ')} ({ex.modality_name}). Clicks so far: {state.clicks}."]
        if state.scored and run and run.scores:
            lines.append(f"**Your score:** DICE {run.scores['dice']:.3f}, HD95 {run.scores['hd95']:.1f} px, "
                         f"{state.clicks} clicks, {REGISTRY[model].title}. The ground truth is outlined in yellow.")
        elif state.scored:
            lines.append("**Your score:** no mask yet, so DICE 0. Add a prompt and press Score me again.")
        return {self.exercise: state, self.ex_canvas: canvas, self.ex_status: "  \n".join(lines)}

    def on_start(self, key: str, model: str) -> dict:
        state = Exercise(example=self.examples[key])
        state.session.open_example(state.example)
        state.session.clear()  # the student draws their own prompt
        return self.exercise_view(state, model)

    def on_click(self, state: Exercise | None, mode: str, model: str, evt: gr.SelectData) -> dict:
        if state is None:
            raise MedsamError("Press Start first.")
        state.session.click(float(evt.index[0]), float(evt.index[1]), mode)
        state.clicks += 1
        state.scored = False
        state.session.predict([model])
        return self.exercise_view(state, model)

    def on_edit(self, state: Exercise | None, model: str, action: str) -> dict:
        if state is None:
            raise MedsamError("Press Start first.")
        getattr(state.session, action)()
        state.scored = False
        state.session.predict([model])
        return self.exercise_view(state, model)

    def on_undo(self, state: Exercise | None, model: str) -> dict:
        return self.on_edit(state, model, "undo")

    def on_clear(self, state: Exercise | None, model: str) -> dict:
        return self.on_edit(state, model, "clear")

    def on_score(self, state: Exercise | None, model: str) -> dict:
        if state is None:
            raise MedsamError("Press Start first.")
        state.scored = True
        return self.exercise_view(state, model)

    # --- links ----------------------------------------------------------------------------------
    def on_link(self, request: gr.Request) -> dict:
        """Open the lesson or exercise a shared link names (query parameters); else change nothing."""
        params = dict(request.query_params) if request else {}
        lesson, exercise = params.get("lesson"), params.get("exercise")
        if lesson in BY_KEY:
            out = {**self.on_lesson(lesson), self.tabs: gr.update(selected="learn"),
                   self.inner: gr.update(selected="lessons"), self.lesson: gr.update(value=lesson)}
            if params.get("example") in self.examples:
                out[self.example] = gr.update(value=params["example"])
            return out
        if exercise in self.examples and not self.examples[exercise].is_volume:
            return {**self.on_start(exercise, self.model_default), self.tabs: gr.update(selected="learn"),
                    self.inner: gr.update(selected="exercise"), self.ex_example: gr.update(value=exercise)}
        return {self.status: gr.skip()}  # no link: nothing changes

    def wire(self, demo: gr.Blocks, tabs: gr.Tabs, segment_session: gr.State) -> None:
        self.tabs = tabs

        def on(trigger, fn, inputs, outputs, status):
            trigger(plain_errors(fn, status), inputs, [*outputs, status], trigger_mode="multiple", **PRIVATE,
                    **MODEL_WORK)

        lesson_out = [self.finding, self.measured, self.question, self.run, self.example, self.plot, self.pictures]
        self.lesson.input(plain_errors(self.on_lesson, self.status), self.lesson, [*lesson_out, self.status],
                          **PRIVATE)
        on(self.run.click, self.on_run, [self.lesson, self.model, self.example, self.n, segment_session],
           [self.plot, self.pictures], self.status)
        ex_out = [self.exercise, self.ex_canvas]
        on(self.ex_start.click, self.on_start, [self.ex_example, self.model], ex_out, self.ex_status)
        on(self.ex_canvas.select, self.on_click, [self.exercise, self.ex_mode, self.model], ex_out, self.ex_status)
        on(self.ex_undo.click, self.on_undo, [self.exercise, self.model], ex_out, self.ex_status)
        on(self.ex_clear.click, self.on_clear, [self.exercise, self.model], ex_out, self.ex_status)
        on(self.ex_score.click, self.on_score, [self.exercise, self.model], ex_out, self.ex_status)
        link_out = [*lesson_out, self.status, tabs, self.inner, self.lesson, *ex_out, self.ex_status, self.ex_example]
        demo.load(plain_errors(self.on_link, self.status), None, link_out, **PRIVATE)
