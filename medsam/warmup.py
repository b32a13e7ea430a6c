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
from .session import Session

log = logging.getLogger(__name__)


def warm(examples: Sequence[Example], models: Sequence[str]) -> dict[str, float]:
    """Load ``models``, segment the opening example with each (the decoder's first call is slow
    too), then encode every other example's view; returns seconds since the start per stage."""
    times: dict[str, float] = {}
    start = time.perf_counter()
    models = list(dict.fromkeys(models))
    for i, ex in enumerate(examples):
        s = Session()
        s.open_example(ex)
        for name in models:
            if i == 0:
                load_model(name)
                times[f"{name}_loaded_s"] = time.perf_counter() - start
                s.predict([name])
                times[f"{name}_opening_example_s"] = time.perf_counter() - start
                log.info("warm-up: %s segmented the opening example %.1f s after the start", name,
                         times[f"{name}_opening_example_s"])
            else:
                load_model(name).set_image(s.rgb)
    times["all_examples_s"] = time.perf_counter() - start
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
