"""The app end to end: a real browser (Playwright + Debian chromium) and gradio_client."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medsam.examples import data_dir as configured_data
from medsam.ui import build, launch_kwargs, queue_kwargs

from conftest import bomb_png

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _png_bytes(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height)).save(buf, format="PNG")
    return buf.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    demo = build(configured_data()).queue(**queue_kwargs())
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True,
                            quiet=True, **launch_kwargs())
    yield url
    demo.close()


@pytest.fixture(scope="module")
def client(app_url: str):
    from gradio_client import Client

    return Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def page(app_url: str):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Debian chromium is required in CI (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(app_url)
        page.wait_for_selector("#canvas")
        yield page
        browser.close()


def _click_image(page, x: float, y: float) -> None:
    """Click at image pixel (x, y) on the canvas, whatever its displayed scale."""
    page.wait_for_function("() => { const i = document.querySelector('#canvas img');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    img = page.locator("#canvas img").first
    box = img.bounding_box()
    natural = img.evaluate("e => [e.naturalWidth, e.naturalHeight]")
    img.click(position={"x": x * box["width"] / natural[0], "y": y * box["height"] / natural[1]})


def _canvas_pixels(page) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.locator("#canvas img").first.screenshot())).convert("RGB"))


def _wait_status(page, text: str) -> str:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function("t => document.querySelector('#status').innerText.includes(t)", arg=text,
                               timeout=60_000)
    except PlaywrightTimeout:
        pytest.fail(f"the status never said {text!r}; it says: {page.locator('#status').inner_text()!r}")
    return page.locator("#status").inner_text()


def test_browser_box_click_and_dice(page, phantom_files) -> None:
    image, mask, (x0, y0, x1, y1) = phantom_files
    page.locator("#upload input[type=file]").set_input_files(str(image))
    page.wait_for_selector("#canvas img")
    _wait_status(page, "Add a prompt")
    before = _canvas_pixels(page)
    page.get_by_label("Box (2 clicks)").check()
    _click_image(page, x0, y0)
    _wait_status(page, "first corner set")
    _click_image(page, x1, y1)
    status = _wait_status(page, "decoded in")
    assert "encoded in" in status or "cached" in status
    page.get_by_label("Positive point").check()
    _click_image(page, (x0 + x1) / 2, (y0 + y1) / 2)
    _wait_status(page, "embedding cached")
    after = _canvas_pixels(page)
    assert before.shape == after.shape and np.abs(before.astype(int) - after.astype(int)).mean() > 1.0, \
        "the mask overlay must change the canvas"
    page.locator("#gt_upload input[type=file]").set_input_files(str(mask))
    status = _wait_status(page, "DICE")
    dice = float(status.split("DICE")[1].split()[0])
    assert dice > 0.8
    assert page.locator("#candidates img").count() == 3
    ASSETS.mkdir(exist_ok=True)
    page.screenshot(path=str(ASSETS / "segment.png"), full_page=True)


def test_browser_bad_file_keeps_serving(page, tmp_path: Path, phantom_files) -> None:
    page.reload()
    page.wait_for_selector("#canvas")
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    page.locator("#upload input[type=file]").set_input_files(str(bad))
    status = _wait_status(page, "Error")
    assert "Traceback" not in status and "PNG" in status
    page.locator("#upload button[aria-label='Clear']").first.click()
    page.locator("#upload input[type=file]").set_input_files(str(phantom_files[0]))
    _wait_status(page, "Add a prompt")


def test_browser_example_with_ground_truth(page) -> None:
    examples = configured_data()
    if examples is None:
        pytest.skip("no data folder configured: the app offers no examples")
    page.reload()
    page.wait_for_selector("#canvas")
    page.locator("#example input").click()
    page.get_by_role("option").filter(has_text="endoscopy").first.click()
    _wait_status(page, "Add a prompt")
    page.get_by_label("Box (2 clicks)").check()
    natural = page.locator("#canvas img").first.evaluate("e => [e.naturalWidth, e.naturalHeight]")
    _click_image(page, natural[0] * 0.05, natural[1] * 0.05)
    _click_image(page, natural[0] * 0.95, natural[1] * 0.95)
    status = _wait_status(page, "DICE")
    assert 0.0 <= float(status.split("DICE")[1].split()[0]) <= 1.0


def test_browser_compare_side_by_side(page, phantom_files) -> None:
    from medsam.models import REGISTRY
    from medsam.ui import default_models

    image, _, (x0, y0, x1, y1) = phantom_files
    page.reload()
    page.wait_for_selector("#canvas")
    page.locator("#upload input[type=file]").set_input_files(str(image))
    _wait_status(page, "Add a prompt")
    page.get_by_label("Box (2 clicks)").check()
    _click_image(page, x0, y0)
    _click_image(page, x1, y1)
    _wait_status(page, "decoded in")
    assert page.locator("#canvas_b img").count() == 0, "the second canvas is hidden until asked for"
    page.get_by_label("Compare with a second model on the same prompts").check()
    titles = [REGISTRY[m].title for m in default_models()]
    page.wait_for_function("ts => ts.every(t => document.querySelector('#status').innerText.includes(t + ':'))",
                           arg=titles, timeout=60_000)
    page.wait_for_function("() => { const i = document.querySelector('#canvas_b img');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    cells = page.locator("#numbers").inner_text().split()
    assert all(name in cells for name in default_models()), cells  # one row per model


def test_browser_prompt_free_head(page, phantom_files) -> None:
    image, mask, _ = phantom_files
    page.reload()
    page.wait_for_selector("#canvas")
    page.locator("#upload input[type=file]").set_input_files(str(image))
    _wait_status(page, "Add a prompt")
    page.locator("#gt_upload input[type=file]").set_input_files(str(mask))
    _wait_status(page, "Ground truth loaded")
    page.locator("#head input").click()
    page.get_by_role("option").filter(has_text="hc18: linear head").click()
    page.locator("#head-run").click()
    status = _wait_status(page, "Prompt-free linear head")
    assert "trained on the 20 training images of hc18" in status
    assert 0.0 <= float(status.split("DICE")[1].split()[0].rstrip("(")) <= 1.0  # a fetal-head head on a phantom
    page.wait_for_selector("#head-view img")


def test_browser_dashboard_renders(page) -> None:
    page.reload()
    page.wait_for_selector("#canvas")
    page.get_by_role("tab", name="Dashboard").click()
    page.wait_for_selector("#dash-intro")
    if "No benchmark results yet" in page.locator("#dash-intro").inner_text():
        pytest.skip("no benchmark results in results/")
    page.wait_for_selector("#dash-modality .main-svg", timeout=30_000)
    assert page.locator("#dash-modality .main-svg").count() >= 1
    assert "pairs" in page.locator("#dash-summary").inner_text()
    page.get_by_role("tab", name="Targets").click()
    page.wait_for_selector("#dash-heatmap .main-svg", timeout=30_000)
    page.get_by_role("tab", name="Overview").click()
    page.wait_for_selector("#dash-published .main-svg", timeout=30_000)
    ASSETS.mkdir(exist_ok=True)
    page.screenshot(path=str(ASSETS / "dashboard.png"), full_page=True)


def test_client_segment_phantom(client, phantom_files) -> None:
    from gradio_client import handle_file

    image, mask, box = phantom_files
    png, info = client.predict(handle_file(str(image)), json.dumps({"box": box}), "litemedsam",
                               handle_file(str(mask)), api_name="/segment")
    out = np.asarray(Image.open(png)) > 0
    assert out.shape == (400, 400) and info["dice"] > 0.9 and info["decode_ms"] > 0
    models = {m["name"]: m for m in client.predict(api_name="/models")}
    assert models["litemedsam"]["ready"] and {"sam_vit_b", "medsam_vit_b", "mobilesam"} <= set(models)


def test_client_segment_real_image(client, data_dir: Path, manifest) -> None:
    from gradio_client import handle_file

    row = manifest[manifest.dataset_id == "kvasir_seg"].iloc[0]
    gt = np.asarray(Image.open(data_dir / row["mask"])) > 0
    ys, xs = np.nonzero(gt)
    box = [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]
    _, info = client.predict(handle_file(str(data_dir / row["image"])), json.dumps({"box": box}), "litemedsam",
                             handle_file(str(data_dir / row["mask"])), api_name="/segment")
    assert info["dice"] > 0.8, info


@pytest.mark.parametrize("content, name, prompts, message", [
    (b"", "empty.png", '{"box": [1, 1, 5, 5]}', "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "cut.png", '{"box": [1, 1, 5, 5]}', "PNG"),
    (_png_bytes(1, 1), "one.png", '{"box": [0, 0, 1, 1]}', "at least 8x8"),
    (bomb_png(), "bomb.png", '{"box": [1, 1, 5, 5]}', "too large"),
    (b"hello", "text.png", '{"box": [1, 1, 5, 5]}', "content is not a PNG"),
    (None, "ok.png", '{"box": [900, 900, 950, 950]}', "no area inside"),
    (None, "ok.png", '{"points": [[-3, 4]]}', "outside"),
    (None, "ok.png", '{"box": [1, 1, 5, 5]}', "Unknown model"),
])
def test_client_bad_input_is_a_plain_error(client, tmp_path: Path, phantom_files, content, name,
                                           prompts, message) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    path = tmp_path / name
    if content is None:
        shutil.copy(phantom_files[0], path)
    else:
        path.write_bytes(content)
    model = "no_such_model" if message == "Unknown model" else "litemedsam"
    with pytest.raises(AppError, match=message) as err:
        client.predict(handle_file(str(path)), prompts, model, None, api_name="/segment")
    assert "Traceback" not in str(err.value)
    _, info = client.predict(handle_file(str(phantom_files[0])), json.dumps({"box": phantom_files[2]}),
                             "litemedsam", None, api_name="/segment")
    assert info["mask_pixels"] > 0, "the app keeps serving after bad input"


def _http_segment(app_url: str, image: Path, prompts: str, model: str = "litemedsam") -> tuple[str, str]:
    """The README's plain-HTTP path: upload, call /segment, read the event stream -> (event, data)."""
    import httpx

    url = app_url.rstrip("/")
    with httpx.Client(timeout=120) as http:
        path = http.post(f"{url}/gradio_api/upload", files={"files": (image.name, image.read_bytes())}).json()[0]
        data = [{"path": path, "meta": {"_type": "gradio.FileData"}}, prompts, model, None]
        event_id = http.post(f"{url}/gradio_api/call/segment", json={"data": data}).json()["event_id"]
        lines = http.get(f"{url}/gradio_api/call/segment/{event_id}").text.splitlines()
    events = [(e.removeprefix("event:").strip(), d.removeprefix("data:").strip())
              for e, d in zip(lines, lines[1:]) if e.startswith("event:") and d.startswith("data:")]
    return events[-1]


def test_http_segment_phantom(app_url: str, phantom_files) -> None:
    image, _, box = phantom_files
    event, data = _http_segment(app_url, image, json.dumps({"box": box}))
    assert event == "complete", data
    mask_file, info = json.loads(data)
    assert mask_file["orig_name"].endswith("_mask.png") and info["image_size"] == [400, 400]


def test_http_segment_bad_prompt_is_a_plain_error(app_url: str, phantom_files) -> None:
    event, data = _http_segment(app_url, phantom_files[0], '{"points": [[-3, 4]]}')
    assert event == "error" and "outside" in data and "Traceback" not in data
