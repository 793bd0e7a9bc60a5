"""gunicorn settings of the deploy benchmark: each worker leaves its cachedeps figures on exit."""

from __future__ import annotations

import json
import os
from typing import Any


def worker_exit(server: Any, worker: Any) -> None:
    """Write this worker's engine counters and embedded store size to ``$BENCH_STATS_DIR``."""
    out = os.environ.get("BENCH_STATS_DIR")
    if not out or not os.environ.get("BENCH_CONFIG", "").startswith("cachedeps"):
        return
    try:
        from django_cachedeps.runtime import get_engine

        engine = get_engine()
        figures: dict[str, Any] = {"engine": engine.stats()}
        if getattr(engine.store, "url", "").startswith("embedded") or type(engine.store).__name__ == "EmbeddedStore":
            figures["store_bytes"] = engine.store.stats().get("bytes", 0)
    except Exception as exc:  # a figure missing is reported, never a crash at exit
        figures = {"error": repr(exc)}
    with open(os.path.join(out, f"worker-{os.getpid()}.json"), "w") as f:
        json.dump(figures, f, default=str)
