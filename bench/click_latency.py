"""Click-to-mask latency through the app's API for an image whose embedding is cached.

Starts the app in-process (or uses --url), sends one warm-up request to encode the image, then N
clicks (box + one random interior point each) to `/segment`, and prints the median and 95th
percentile of the round trip next to the server-side decode time. Each click uploads the image,
runs the event and downloads the mask PNG, two ways:

- ``http``: Gradio's HTTP API (upload, ``POST /gradio_api/call/segment``, read the event stream, fetch
  the mask), as curl or the browser's JavaScript client do it. This is the click-to-mask figure.
- ``gradio_client``: the Python client, whose result thread polls for messages every 50 ms, so its
  round trip carries up to that much waiting per message on top of the same server work.

    python -m bench.click_latency [--image PATH --box x0 y0 x1 y1] [--clicks 30] [--url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from medsam.paths import command_line
from medsam.results import git_commit


def _phantom(folder: Path) -> tuple[Path, list[int]]:
    from PIL import Image
    from scipy import ndimage
    from skimage.data import shepp_logan_phantom

    p = np.round(shepp_logan_phantom(), 3)
    labels, _ = ndimage.label(p == 0.298)
    mask = labels == np.bincount(labels.ravel())[1:].argmax() + 1
    ys, xs = np.nonzero(mask)
    Image.fromarray((p * 255).astype(np.uint8)).save(folder / "phantom.png")
    return folder / "phantom.png", [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]


def start_app() -> str:
    """Launch the app in this process on a free port; return its URL."""
    from medsam.ui import build, launch_kwargs, queue_kwargs

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _, url, _ = build().queue(**queue_kwargs()).launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_kwargs())
    return url


def http_segment(http, url: str, image: Path, prompts: dict, model: str) -> dict:
    """One `/segment` call over Gradio's HTTP API; returns its info and checks the mask came back."""
    uploaded = http.post(f"{url}/gradio_api/upload", files={"files": (image.name, image.read_bytes())})
    data = [{"path": uploaded.json()[0], "meta": {"_type": "gradio.FileData"}}, json.dumps(prompts), model, None]
    event_id = http.post(f"{url}/gradio_api/call/segment", json={"data": data}).json()["event_id"]
    event, payload = None, None
    with http.stream("GET", f"{url}/gradio_api/call/segment/{event_id}") as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                payload = json.loads(line.removeprefix("data:"))
                break
    if event != "complete":
        raise RuntimeError(f"/segment answered {event}: {payload}")
    mask = http.get(payload[0]["url"])
    mask.raise_for_status()
    return payload[1]


def _timed(call: Callable[[dict], dict], box: list[int], clicks: int) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(0)
    x0, y0, x1, y1 = box
    rtt, decode = [], []
    for _ in range(clicks):
        point = [[int(rng.integers(x0, x1 + 1)), int(rng.integers(y0, y1 + 1))]]
        start = time.perf_counter()
        info = call({"box": box, "points": point, "labels": [1]})
        rtt.append((time.perf_counter() - start) * 1e3)
        assert info["embedding_cached"], "the image embedding must be reused"
        decode.append(info["decode_ms"])
    return rtt, decode


def measure(url: str, image: Path, box: list[int], clicks: int = 30, model: str = "litemedsam") -> dict:
    """Encode ``image`` once, then time ``clicks`` box + interior point requests through ``/segment``,
    over HTTP and with gradio_client."""
    import httpx
    from gradio_client import Client, handle_file

    url = url.rstrip("/")
    with httpx.Client(timeout=120) as http:
        def over_http(prompts: dict) -> dict:
            return http_segment(http, url, image, prompts, model)

        first = over_http({"box": box})
        rtt, decode = _timed(over_http, box, clicks)
    client = Client(url, verbose=False)
    rtt_client, _ = _timed(lambda p: client.predict(handle_file(str(image)), json.dumps(p), model, None,
                                                    api_name="/segment")[1], box, clicks)
    return {"model": model, "image": image.name, "clicks": clicks, "first_request_encode_ms": first["encode_ms"],
            "click_to_mask_ms_median": round(float(np.median(rtt)), 1),
            "click_to_mask_ms_p95": round(float(np.percentile(rtt, 95)), 1),
            "server_decode_ms_median": round(float(np.median(decode)), 1),
            "gradio_client_ms_median": round(float(np.median(rtt_client)), 1),
            "gradio_client_ms_p95": round(float(np.percentile(rtt_client, 95)), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path)
    parser.add_argument("--box", type=int, nargs=4)
    parser.add_argument("--clicks", type=int, default=30)
    parser.add_argument("--model", default="litemedsam")
    parser.add_argument("--url")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()

    import tempfile

    image, box = (args.image, args.box) if args.image else _phantom(Path(tempfile.mkdtemp()))
    figures = {"command": command_line(["python", "-m", "bench.click_latency"], sys.argv[1:]),
               "git_commit": git_commit(Path(__file__).resolve().parents[1] / "results"),
               **measure(args.url or start_app(), image, box, args.clicks, args.model),
               "machine": f"{platform.machine()} cpus={os.cpu_count()}"}
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
