"""Seconds per call of the Learn endpoints on every bundled 2D example, through the app's HTTP API.

    python -m bench.learn_endpoints [--model litemedsam_ft] [--out results/learn_endpoints.json]

Starts the app in this process, then for each example calls ``/prompt_sensitivity`` (jitter 20 px,
10 boxes) and ``/clicks_to_target`` (10 clicks) with ``gradio_client``, each image encoded once
beforehand by ``/segment`` so that the figures are what a class waits for after opening an example.
For scale, the same run times ``/segment`` on the cached image. Prints and records median and max.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time
from functools import partial
from pathlib import Path

from medsam.gallery import bundled_examples
from medsam.paths import REPO, command_line
from medsam.results import git_commit
from medsam.ui import build, launch_kwargs, queue_kwargs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    from gradio_client import Client, handle_file

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="litemedsam_ft")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "learn_endpoints.json")
    args = parser.parse_args()
    demo = build(None).queue(**queue_kwargs())
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                            **launch_kwargs())
    client = Client(url, verbose=False)
    times: dict[str, list[float]] = {"segment_cached": [], "prompt_sensitivity": [], "clicks_to_target": []}
    for ex in bundled_examples():
        if ex.box is None:
            continue
        image, mask, box = handle_file(str(ex.image)), handle_file(str(ex.mask)), json.dumps(list(ex.box))
        prompts = json.dumps({"box": list(ex.box)})
        client.predict(image, prompts, args.model, None, api_name="/segment")  # encodes the image
        segment = partial(client.predict, image, prompts, args.model, None, api_name="/segment")
        sensitivity = partial(client.predict, image, mask, args.model, box, 20, 10, api_name="/prompt_sensitivity")
        clicks = partial(client.predict, image, mask, args.model, 10, api_name="/clicks_to_target")
        times["segment_cached"].append(timed(segment))
        times["prompt_sensitivity"].append(timed(sensitivity))
        times["clicks_to_target"].append(timed(clicks))
        print(ex.id, {k: round(v[-1], 2) for k, v in times.items()}, flush=True)
    demo.close()
    figures = {"command": command_line(["python", "-m", "bench.learn_endpoints"], sys.argv[1:]),
               "git_commit": git_commit(args.out.parent), "date": time.strftime("%Y-%m-%d"), "model": args.model,
               "examples": len(times["segment_cached"]),
               **{k: {"median_s": round(statistics.median(v), 2), "max_s": round(max(v), 2)} for k, v in times.items()}}
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
