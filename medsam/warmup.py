"""Start-up work in the background, so that visitors wait for the decoder only.

One daemon thread loads the given models (building exported graphs on first use) and encodes the
bundled examples' views for each of them, the page's opening example first. A visitor who arrives
meanwhile asks for the same embedding and waits for that encode instead of starting another one
(``EmbeddingCache.get_or_compute``). Failures are logged, never raised: the app serves regardless.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from .gallery import Example
from .predictor import load_model
from .service import Session

log = logging.getLogger(__name__)


def warm(examples: Sequence[Example], models: Sequence[str]) -> dict[str, float]:
    """Load ``models`` and encode every example's view with each (and decode the first example's
    suggested box); returns seconds per stage."""
    times: dict[str, float] = {}
    start = time.perf_counter()
    sessions = []
    for ex in examples:
        s = Session()
        s.open_example(ex)
        sessions.append(s)
    times["examples_loaded_s"] = time.perf_counter() - start
    for name in dict.fromkeys(models):
        t = time.perf_counter()
        predictor = load_model(name)
        times[f"{name}_load_s"] = time.perf_counter() - t
        t = time.perf_counter()
        for i, s in enumerate(sessions):
            predictor.set_image(s.rgb)
            if i == 0:  # the opening example's result, which also runs the decoder's first (slow) call
                s.predict([name])
                times[f"{name}_first_example_s"] = time.perf_counter() - start
        times[f"{name}_examples_s"] = time.perf_counter() - t
    times["total_s"] = time.perf_counter() - start
    return times


def warm_in_background(examples: Sequence[Example], models: Sequence[str]) -> threading.Thread:
    """``warm`` on a daemon thread; its timings are logged."""
    def run() -> None:
        try:
            times = warm(examples, models)
            log.info("warm-up done: %s", ", ".join(f"{k} {v:.1f}" for k, v in times.items()))
        except Exception:  # noqa: BLE001 - the app works without a warm cache, only slower
            log.exception("warm-up failed")

    thread = threading.Thread(target=run, name="medsam-warmup", daemon=True)
    thread.start()
    return thread
