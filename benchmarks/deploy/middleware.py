"""Count each request's database statements and their time, in response headers.

``X-Bench-Q``: statements; ``X-Bench-QF``: of them, polls of the cachedeps change feed;
``X-Bench-TD`` / ``X-Bench-TF``: seconds spent in all of them / in the polls (as the
application waits for them: the database's time plus the loopback round trip).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from django.db import connection

__all__ = ["QueryHeaders"]


class QueryHeaders:
    """Outermost middleware of the deploy benchmark's site."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        """Run the request with an execute wrapper and report what it counted."""
        counts = [0, 0, 0.0, 0.0]

        def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            start = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                spent = time.perf_counter() - start
                counts[0] += 1
                counts[2] += spent
                if "cachedeps_change" in sql and sql.lstrip().upper().startswith("SELECT"):
                    counts[1] += 1
                    counts[3] += spent

        with connection.execute_wrapper(wrapper):
            response = self.get_response(request)
        response["X-Bench-Q"] = str(counts[0])
        response["X-Bench-QF"] = str(counts[1])
        response["X-Bench-TD"] = f"{counts[2]:.6f}"
        response["X-Bench-TF"] = f"{counts[3]:.6f}"
        return response
