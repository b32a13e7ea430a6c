"""Load test: concurrent gradio_client users on the app, with errors, click latency and resident memory.

Starts ``python app.py`` in a subprocess on a free port (so its memory can be read from /proc), then
runs ``--users`` threads, each with its own image (distinct images from the ``--data`` folder's
manifest, else generated ones). Warm-up: a box request to encode the image and one click. Then
``--clicks`` requests of the box plus a random interior point through ``/segment``. Reports errors,
the median and p95 click latency, and the server's resident memory before, after warm-up and at the end.

    python -m bench.load [--data DIR] [--users 8] [--clicks 25] [--out results/reliability.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from medsam.paths import REPO, command_line
from medsam.results import git_commit
from medsam.settings import settings
from medsam.ui import launch_kwargs, queue_kwargs  # the settings app.py launches with

MODEL = "litemedsam"


@dataclass
class User:
    """One simulated user: an image, its box, and what happened to its requests."""

    image: Path
    box: list[int]
    warmup_ms: float = 0.0
    click_ms: list[float] = field(default_factory=list)
    decode_ms: list[float] = field(default_factory=list)
    cache_misses: int = 0  # clicks whose embedding was not cached: the cache bound was too small
    errors: list[str] = field(default_factory=list)


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    """Resident memory (or, with key="VmHWM", its peak) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"{key} is not in /proc/{pid}/status")


def data_images(data: Path, n: int) -> list[tuple[Path, list[int]]]:
    """``n`` distinct images, one dataset each while they last, with their masks' bounding boxes."""
    import pandas as pd

    from medsam.imaging import load_mask

    rows = pd.read_csv(data / "manifest.csv").drop_duplicates("image").sort_values(["dataset_id", "image"])
    rows = rows.assign(rank=rows.groupby("dataset_id").cumcount()).sort_values(["rank", "dataset_id"]).head(n)
    out = []
    for r in rows.itertuples():
        ys, xs = np.nonzero(load_mask(data / r.mask))
        out.append((data / r.image, [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]))
    return out


def generated_images(folder: Path, n: int) -> list[tuple[Path, list[int]]]:
    """``n`` different 256x256 gray images, each a bright disc on noise, with the disc's box."""
    from PIL import Image

    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        cy, cx, r = (int(v) for v in rng.integers((80, 80, 30), (176, 176, 60)))
        yy, xx = np.mgrid[:256, :256]
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
        pixels = np.clip(np.where(disc, 190, 60) + rng.normal(0, 12, disc.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"generated_{i}.png")
        out.append((folder / f"generated_{i}.png", [cx - r, cy - r, cx + r, cy + r]))
    return out


def start_app(log: Path) -> tuple[subprocess.Popen, str, float]:
    """Start app.py on a free port; return the process, its URL and the seconds it took to answer."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    start = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)], cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT)
    while time.perf_counter() - start < 300:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with code {proc.returncode}; see {log}")
        try:
            if httpx.get(url + "config", timeout=5).status_code == 200:
                return proc, url, time.perf_counter() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"app.py did not answer within 300 s; see {log}")


def run_user(url: str, user: User, clicks: int, seed: int, warmed: threading.Barrier,
             measured: threading.Barrier) -> None:
    """Warm up (encode), wait for every user, click ``clicks`` times, wait again; errors are recorded."""
    from gradio_client import Client, handle_file

    def call(prompts: dict) -> dict:
        return client.predict(handle_file(str(user.image)), json.dumps(prompts), MODEL, None, api_name="/segment")[1]

    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = user.box

    def click() -> dict:
        return {"box": user.box, "points": [[int(rng.integers(x0, x1 + 1)), int(rng.integers(y0, y1 + 1))]],
                "labels": [1]}

    try:
        client = Client(url, verbose=False)
        start = time.perf_counter()
        call({"box": user.box})
        user.warmup_ms = (time.perf_counter() - start) * 1e3
        call(click())  # the clicks' prompt shape once, so that warm-up is complete
    except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
        user.errors.append(f"warm-up: {exc}")
    warmed.wait()
    for _ in range(0 if user.errors else clicks):
        prompts = click()
        start = time.perf_counter()
        try:
            info = call(prompts)
            user.click_ms.append((time.perf_counter() - start) * 1e3)
            user.decode_ms.append(info["decode_ms"])
            user.cache_misses += not info["embedding_cached"]
        except Exception as exc:  # noqa: BLE001
            user.errors.append(str(exc))
    measured.wait()


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "os": platform.platform()}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=settings().data,
                        help="folder with manifest.csv (default: $MEDSAM_DATA); generated images without it")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--clicks", type=int, default=25, help="clicks per user, after one warm-up request")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "reliability.json")
    return parser.parse_args()


def drive(proc: subprocess.Popen, url: str, users: list[User], clicks: int) -> tuple[dict, float]:
    """All users at once against the app: (its memory at each stage in MB, wall seconds of the clicks)."""
    rss = {"before": rss_mb(proc.pid)}
    warmed = threading.Barrier(len(users) + 1, timeout=3600)
    measured = threading.Barrier(len(users) + 1, timeout=3600)
    threads = [threading.Thread(target=run_user, args=(url, u, clicks, i, warmed, measured), daemon=True)
               for i, u in enumerate(users)]
    for t in threads:
        t.start()
    warmed.wait()
    rss["after_warmup"] = rss_mb(proc.pid)
    start = time.perf_counter()
    measured.wait()
    wall_s = time.perf_counter() - start
    rss["end"] = rss_mb(proc.pid)
    rss["peak"] = rss_mb(proc.pid, "VmHWM")
    return rss, wall_s


def figures(args: argparse.Namespace, users: list[User], have_data: bool, rss: dict, wall_s: float,
            startup_s: float) -> dict:
    """What results/reliability.json records."""
    clicks = [ms for u in users for ms in u.click_ms]
    errors = [e for u in users for e in u.errors]
    return {
        "command": command_line(["python", "-m", "bench.load"], sys.argv[1:]),
        "git_commit": git_commit(REPO / "results"),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "env": {k: os.environ[k] for k in ("MEDSAM_THREADS", "MEDSAM_BACKEND", "MEDSAM_CACHE_MB", "OMP_NUM_THREADS")
                if k in os.environ},
        "model": MODEL,
        "users": len(users),
        "clicks_per_user": args.clicks,
        "images": [f"{u.image.parent.parent.name}/{u.image.name}" if have_data else u.image.name for u in users],
        "errors": len(errors),
        "error_messages": sorted(set(errors))[:10],
        "clicks_answered": len(clicks),
        "click_ms_median": round(float(np.median(clicks)), 1) if clicks else None,
        "click_ms_p95": round(float(np.percentile(clicks, 95)), 1) if clicks else None,
        "server_decode_ms_median": round(float(np.median([d for u in users for d in u.decode_ms])), 1)
        if clicks else None,
        "warmup_ms_median": round(float(np.median([u.warmup_ms for u in users])), 1),
        "clicks_per_s": round(len(clicks) / wall_s, 2),
        "embedding_cache_misses": sum(u.cache_misses for u in users),
        "startup_s": round(startup_s, 1),
        "rss_mb": rss,
        "rss_growth_kb_per_click": round((rss["end"] - rss["after_warmup"]) * 1024 / max(len(clicks), 1), 1),
        "embedding_cache_bound_mb": settings().cache_mb,
        "queue": queue_kwargs(),
        "max_file_size": launch_kwargs()["max_file_size"],
    }


def main() -> None:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="medsam-load-"))
    have_data = args.data is not None and (args.data / "manifest.csv").is_file()
    images = data_images(args.data, args.users) if have_data else []
    images += generated_images(work, args.users - len(images))
    users = [User(image, box) for image, box in images]
    proc, url, startup_s = start_app(work / "app.log")
    try:
        rss, wall_s = drive(proc, url, users, args.clicks)
    finally:
        proc.terminate()
        proc.wait(30)
    result = figures(args, users, have_data, rss, wall_s, startup_s)
    text = json.dumps(result, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    if result["errors"]:
        sys.exit(f"{result['errors']} requests failed; the app's log is {work / 'app.log'}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
