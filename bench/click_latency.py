"""Click-to-mask latency through the app's API for an image whose embedding is cached.

Starts the app in-process (or uses --url), sends one warm-up request to encode the image, then N
clicks (box + one random interior point each) through gradio_client's `/segment`, and prints the
median and 95th percentile of the round trip, next to the server-side decode time.

    python bench/click_latency.py [--image PATH --box x0 y0 x1 y1] [--clicks 30] [--url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from medsam.benchmark import git_commit  # noqa: E402


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


def measure(url: str, image: Path, box: list[int], clicks: int = 30, model: str = "litemedsam") -> dict:
    """Encode ``image`` once, then time ``clicks`` box + interior point requests through ``/segment``."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    call = lambda prompts: client.predict(handle_file(str(image)), json.dumps(prompts), model, None,  # noqa: E731
                                          api_name="/segment")[1]
    first = call({"box": box})
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
    return {"model": model, "image": image.name, "clicks": clicks, "first_request_encode_ms": first["encode_ms"],
            "click_to_mask_ms_median": round(float(np.median(rtt)), 1),
            "click_to_mask_ms_p95": round(float(np.percentile(rtt, 95)), 1),
            "server_decode_ms_median": round(float(np.median(decode)), 1)}


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
    figures = {"command": "python bench/click_latency.py " + " ".join(sys.argv[1:]),
               "git_commit": git_commit(Path(__file__).resolve().parents[1] / "results"),
               **measure(args.url or start_app(), image, box, args.clicks, args.model),
               "machine": f"{platform.machine()} cpus={os.cpu_count()}"}
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
