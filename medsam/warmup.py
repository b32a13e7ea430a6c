"""Start-up work in the background, so that visitors wait for the decoder only.

One daemon thread takes the models one at a time, the page's models first and then every other
ready model, smallest checkpoint first (the largest, slowest encoders last): it loads the model
(building exported graphs on first use), segments the page's opening example with it (the
decoder's first call is slow too), and encodes every other example's view. Embeddings are kept on
disk per model and backend (``medsam.embeddings``), so after a restart switching models on an
example costs only the decoder. A visitor who arrives meanwhile asks for the same embedding and
waits for that encode instead of starting another one (``EmbeddingCache.get_or_compute``).
Failures are logged, never raised: the app serves regardless.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from .gallery import Example
from .models import get_spec
from .predictor import list_models, load_model
from .session import Session

log = logging.getLogger(__name__)


def warm_order(first: Sequence[str]) -> list[str]:
    """``first`` (the page's models), then every other ready model, smallest checkpoint first."""
    ready = [m["name"] for m in list_models() if m["ready"]]
    rest = sorted((n for n in ready if n not in first), key=lambda n: get_spec(n).checkpoint.size or 0)
    return list(dict.fromkeys([*first, *rest]))


def warm(examples: Sequence[Example], models: Sequence[str]) -> dict[str, float]:
    """For each of ``models`` in turn: load it, segment the opening example, then encode (or read
    from disk) every example's view; returns seconds since the start per stage."""
    times: dict[str, float] = {}
    start = time.perf_counter()
    sessions = []
    for ex in examples:
        s = Session()
        s.open_example(ex)
        sessions.append(s)
    for name in dict.fromkeys(models):
        try:
            _warm_model(name, sessions, times, start)
        except Exception:  # noqa: BLE001 - one model failing leaves the others to warm
            log.exception("warm-up of %s failed", name)
    times["all_examples_s"] = time.perf_counter() - start
    return times


def _warm_model(name: str, sessions: Sequence[Session], times: dict[str, float], start: float) -> None:
    predictor = load_model(name)
    times[f"{name}_loaded_s"] = time.perf_counter() - start
    for i, s in enumerate(sessions):
        predictor.set_image(s.rgb, persist=True)
        if i == 0:
            s.predict([name])
            times[f"{name}_opening_example_s"] = time.perf_counter() - start
            log.info("warm-up: %s segmented the opening example %.1f s after the start", name,
                     times[f"{name}_opening_example_s"])
    times[f"{name}_all_examples_s"] = time.perf_counter() - start


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
