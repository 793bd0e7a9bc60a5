"""A django-debug-toolbar panel: what cachedeps did for the request.

Add it to the toolbar (``pip install cachedeps[toolbar]``)::

    DEBUG_TOOLBAR_PANELS = [..., "django_cachedeps.panels.CachedepsPanel"]

It lists the request's cache hits, misses and stale entries, the entries stored with their
dependency keys and the SQL run to fill them (the statements between the entry's miss and its
store: a query entry shows its own statement, a page or fragment every statement it ran), and
the invalidations, from the engine's event listeners. Events of other
requests running at the same time are left out (the panel follows the request's context).
"""

from __future__ import annotations

import contextvars
from typing import Any

try:
    from debug_toolbar.panels import Panel
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "django_cachedeps.panels needs django-debug-toolbar: pip install 'cachedeps[toolbar]'"
    ) from exc

__all__ = ["CachedepsPanel"]

_current: contextvars.ContextVar[Any] = contextvars.ContextVar("cachedeps_panel", default=None)
_SHOWN = ("hit", "miss", "stale", "set", "invalidate", "purge")


class CachedepsPanel(Panel):
    """Hits, misses, dependency keys and invalidations of one request."""

    title = "cachedeps"
    template = "django_cachedeps/panel.html"
    is_async = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._events: list[dict[str, Any]] = []
        self._engine: Any = None
        self._token: Any = None
        self._sql: list[str] = []
        self._miss_at: dict[str, int] = {}
        self._wrapped: list[Any] = []

    @property
    def nav_subtitle(self) -> str:
        """Summarize the request's hits and misses."""
        counts = self._counts()
        return f"{counts['hit']} hits, {counts['miss'] + counts['stale']} misses"

    def _counts(self) -> dict[str, int]:
        counts = dict.fromkeys(_SHOWN, 0)
        for event in self._events:
            counts[event["event"]] = counts.get(event["event"], 0) + 1
        return counts

    def _listen(self, event: str, key: str, **detail: Any) -> None:
        if _current.get() is not self or event not in _SHOWN:
            return
        deps = detail.get("deps") or ()
        sql: list[str] = []
        if event in ("miss", "stale"):
            self._miss_at.setdefault(key, len(self._sql))
        elif event == "set":
            # An entry stored without a miss of its own (a page found under no vary rule yet)
            # ran everything since the oldest read still waiting for its entry.
            start = self._miss_at.pop(key, None)
            if start is None:
                start = min(self._miss_at.values(), default=len(self._sql))
            sql = self._sql[start:]
        self._events.append({"event": event, "key": key, "tid": detail.get("tid"),
                             "deps": sorted(deps), "sql": sql})

    def _record_sql(self, execute: Any, sql: Any, params: Any, many: bool, context: Any) -> Any:
        if _current.get() is self and "cachedeps_change" not in str(sql):  # not the feed poll
            self._sql.append(str(sql))
        return execute(sql, params, many, context)

    def enable_instrumentation(self) -> None:
        """Listen to the engine's events for this request."""
        from .runtime import get_engine

        try:
            self._engine = get_engine()
        except Exception:  # a misconfigured cache is reported by the system checks
            self._engine = None
            return
        self._token = _current.set(self)
        self._engine.add_listener(self._listen)
        from django.db import connections

        for connection in connections.all():
            connection.execute_wrappers.append(self._record_sql)
            self._wrapped.append(connection)

    def disable_instrumentation(self) -> None:
        """Stop listening."""
        if self._engine is not None:
            self._engine.remove_listener(self._listen)
        for connection in self._wrapped:
            if self._record_sql in connection.execute_wrappers:
                connection.execute_wrappers.remove(self._record_sql)
        self._wrapped = []
        if self._token is not None:
            try:
                _current.reset(self._token)
            except ValueError:  # reset from another context: nothing to undo there
                pass
            self._token = None

    def generate_stats(self, request: Any, response: Any) -> None:
        """Record the request's events for the panel's template."""
        self.record_stats({"events": self._events, "counts": self._counts()})
