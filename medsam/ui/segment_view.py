"""What the Segment tab draws and says for a session: pictures, status lines, thumbnails (no wiring)."""

from __future__ import annotations

import cv2
import numpy as np

from .. import visualize
from ..gallery import Example
from ..models import REGISTRY
from ..service import prompt_advice
from ..session import ModelRun, Session
from .common import picture

NO_IMAGE = "Load an image or pick an example to start."
THUMB_SIDE = 192


def thumbnails(examples: list[Example]) -> list[str]:
    """One picture per example: its view with the reference outlined and the suggested box drawn."""
    out = []
    for ex in examples:
        s = Session()
        s.open_example(ex)
        assert s.rgb is not None
        rgb = visualize.draw_prompts(visualize.overlay(s.rgb, None, outline=s.gt), [], [], s.box)
        scale = THUMB_SIDE / max(rgb.shape[:2])
        if scale < 1:
            rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        out.append(picture(rgb))
    return out


def status_text(s: Session, models: list[str]) -> str:
    """What the session shows, in sentences: prompt state, advice, reference, and each model's result."""
    if s.rgb is None:
        return NO_IMAGE
    lines = []
    if s.corner is not None:
        lines.append("Box: first corner set; click the opposite corner.")
    prompt = s.prompt()
    if prompt is None:
        lines.append("Add a prompt: choose **Box** and click two corners, or click points.")
    else:
        lines += [f"**Note:** {a}" for m in dict.fromkeys(models) if (a := prompt_advice(m, prompt))]
    if s.gt is not None:
        where = " in this slice" if s.scan is not None and s.scan.is_volume else ""
        what = "Ground truth" if s.reference == "expert" else f"Reference ({s.reference}, not expert ground truth)"
        lines.append(f"{what} loaded: {int(s.gt.sum())} mask pixels{where}, outlined on the image.")
    for run in s.runs:
        title = REGISTRY[run.model].title
        if run.error:
            lines.append(f"**{title}:** {run.error}")
        else:
            enc = "embedding cached" if run.cached else f"encoded in {run.encode_ms:.0f} ms"
            dice = f", DICE {run.scores['dice']:.3f}" if run.scores else ""
            lines.append(f"**{title}:** {enc}, decoded in {run.prediction.decode_ms:.0f} ms{dice}")
    return "  \n".join(lines)


def example_text(ex: Example | None) -> str:
    if ex is None:
        return ""
    return (f"**Example:** {ex.label} · {ex.modality_name} · mask: {ex.reference_text} · "
            f"{ex.source} ({ex.license}). The suggested box is drawn; draw your own or click to refine.")

def canvas(s: Session, run: ModelRun | None, outline: bool = True) -> str:
    """The picture to click on: the volume's objects on this slice in their colours, the model's
    mask, the reference outlined (if ``outline``) and the prompts."""
    base = s.rgb
    if s.objects is not None and s.scan is not None:
        labels = s.scan.view(s.objects.labels, s.axis, s.index or 0).astype(np.int32)
        if labels.any():
            base = visualize.label_colors(labels, s.rgb)
    shown = visualize.overlay(base, run.mask if run else None, outline=s.gt if outline else None)
    return picture(visualize.draw_prompts(shown, s.points, s.labels, s.box, s.corner))

