"""First visit on a fresh start: `python app.py` with empty caches until a visitor sees a mask.

    python -m bench.first_visit [--out results/perf.json] [--runs 3]

Starts ``python app.py`` as a Space would on its first boot: an empty checkpoint folder (so the
exported graphs are built), an empty Gradio cache and no data folder. A headless Chromium opens the
page as soon as it answers; the clock stops when the opening example's mask is drawn and its DICE is
in the status line. Once the start-up warm-up is done, a second visitor opens the page. Medians over ``--runs`` fresh
starts go to ``first_visit`` in ``--out`` (other keys of that file are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from medsam.paths import REPO, command_line
from medsam.results import git_commit

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MASK_SHOWN = ("() => { const s = document.querySelector('#status'); const i = document.querySelector('#canvas img');"
              " return s && s.innerText.includes('DICE') && i && i.complete && i.naturalWidth > 0; }")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_page(url: str, start: float, timeout: float = 300) -> float:
    """Seconds from ``start`` until ``url`` answers 200."""
    while time.perf_counter() - start < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.perf_counter() - start
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the app did not answer within {timeout:.0f} s")


def wait_for_log(log: Path, text: str, start: float, timeout: float = 300) -> float:
    """Seconds from ``start`` until the app's log holds ``text``."""
    while time.perf_counter() - start < timeout:
        if text in log.read_text():
            return time.perf_counter() - start
        time.sleep(0.2)
    raise SystemExit(f"the app's log never said {text!r}")


def visit(browser, url: str) -> float:
    """Seconds from opening the page to the opening example's mask and DICE on screen."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    t = time.perf_counter()
    page.goto(url)
    page.wait_for_function(MASK_SHOWN, timeout=300_000)
    seconds = time.perf_counter() - t
    page.close()
    return seconds


def one_start(chromium: str) -> dict:
    """One fresh start: empty caches, app started, first and second visit timed."""
    from playwright.sync_api import sync_playwright

    scratch = Path(tempfile.mkdtemp(prefix="medsam-first-visit-"))
    env = {**os.environ, "MEDSAM_CHECKPOINTS": str(scratch / "checkpoints"), "GRADIO_TEMP_DIR": str(scratch / "gradio"),
           "MEDSAM_DATA": "", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log = open(scratch / "app.log", "w")
    start = time.perf_counter()
    app = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=REPO, env=env, stdout=log,
                           stderr=subprocess.STDOUT)
    try:
        served = wait_for_page(url, start)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            first = visit(browser, url) + served
            warmed = wait_for_log(scratch / "app.log", "warm-up done", start)
            second = visit(browser, url)
            browser.close()
    finally:
        app.terminate()
        app.wait(30)
        log.close()
    warm = [ln.split("warm-up done: ", 1)[1].strip() for ln in (scratch / "app.log").read_text().splitlines()
            if "warm-up done: " in ln]
    shutil.rmtree(scratch, ignore_errors=True)
    return {"page_served_s": served, "first_mask_s": first, "warmup_done_s": warmed, "next_visit_mask_s": second,
            "warmup": warm[0] if warm else "not finished"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "results" / "perf.json")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("Debian's chromium is needed: apt-get install chromium")
    runs = []
    for i in range(args.runs):
        runs.append(one_start(chromium))
        print(f"run {i + 1}: {json.dumps(runs[-1])}", flush=True)
    figures = {"command": command_line(["python", "-m", "bench.first_visit"], sys.argv[1:]),
               "git_commit": git_commit(REPO / "results"), "date": time.strftime("%Y-%m-%d"),
               "runs": runs, **{k: round(statistics.median(r[k] for r in runs), 2)
                                for k in ("page_served_s", "first_mask_s", "warmup_done_s", "next_visit_mask_s")}}
    perf = json.loads(args.out.read_text()) if args.out.is_file() else {}
    perf["first_visit"] = figures
    args.out.write_text(json.dumps(perf, indent=2) + "\n")
    print(json.dumps({k: v for k, v in figures.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
