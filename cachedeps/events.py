"""Process-wide listeners of every cache's events: the hook exporters and adapters use.

A listener registered here is called for the events of every :class:`~cachedeps.cache.Cache`
of the process (those built before and after it), as ``fn(cache, event, key, **detail)``,
in the thread that caused the event. A cache's own listeners
(:meth:`Cache.add_listener <cachedeps.cache.Cache.add_listener>`) get the same events
without the ``cache`` argument.

=================  =========  ============================================================
event              key        detail
=================  =========  ============================================================
``hit``            entry key  ``tid`` (the entry's stamp); ``state=True`` for an object state
``miss``           entry key  ``corrupt=True`` for unreadable bytes; ``state=True``
``stale``          entry key  ``tid``; an entry found but outdated (a rejection, a miss to
                              the caller); ``state=True``
``set``            entry key  ``tid``, ``deps``
``invalidate``     dep. key   ``tid``; one event per key of a committed change
``commit``         ``""``     ``keys`` (the dependency keys of one committed change), ``tid``
``purge``          ``""``     ``count`` (store entries deleted through the trees), ``tid``
``poll``           ``""``     ``tid`` (the position reached), ``seconds`` (the poll's duration)
``store_error``    ``""``     ``error`` (the exception): the store failed, a miss or a no-op
=================  =========  ============================================================

With no listener registered, a cache builds no event at all: each hot path tests one
attribute (``Stats.listening``) first. A listener that raises is logged and skipped; it
never breaks the read or write that caused the event.

Example::

    from cachedeps import events

    def count_hits(cache, event, key, **detail):
        if event == "hit":
            ...

    events.add_listener(count_hits)
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable

__all__ = ["EVENTS", "GlobalListener", "add_listener", "remove_listener", "listeners"]

#: every event name a cache emits
EVENTS = ("hit", "miss", "stale", "set", "invalidate", "commit", "purge", "poll", "store_error")

GlobalListener = Callable[..., None]

_lock = threading.Lock()
_listeners: tuple[GlobalListener, ...] = ()
# Every live Stats, so that registering a listener turns their ``listening`` flag on.
_instances: weakref.WeakSet[Any] = weakref.WeakSet()


def listeners() -> tuple[GlobalListener, ...]:
    """Return the process-wide listeners, in registration order."""
    return _listeners


def add_listener(fn: GlobalListener) -> None:
    """Call ``fn(cache, event, key, **detail)`` on every cache's events (idempotent)."""
    global _listeners
    with _lock:
        if fn in _listeners:
            return
        _listeners = (*_listeners, fn)
        instances = list(_instances)
    for stats in instances:
        stats.refresh()


def remove_listener(fn: GlobalListener) -> None:
    """Stop calling ``fn``; an unknown listener is ignored."""
    global _listeners
    with _lock:
        _listeners = tuple(f for f in _listeners if f != fn)
        instances = list(_instances)
    for stats in instances:
        stats.refresh()


def _register(stats: Any) -> None:
    """Track a new :class:`~cachedeps.stats.Stats` (called by its constructor)."""
    with _lock:
        _instances.add(stats)
