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

With no listener registered, a cache builds no event at all: each path tests one attribute
first. A listener registered for some events only (``add_listener(fn, only=("poll",))``)
leaves the per-read events (:data:`LOOKUP_EVENTS`: hits, misses, stale entries, sets) off,
so reads pay nothing for it: the metrics exporters count those from the caches' counters
(:class:`~cachedeps.stats.Stats`) instead. A listener that raises is logged and skipped; it
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
from typing import Any, Callable, Iterable

__all__ = ["EVENTS", "LOOKUP_EVENTS", "GlobalListener", "add_listener", "remove_listener", "listeners",
           "instances"]

#: every event name a cache emits
EVENTS = ("hit", "miss", "stale", "set", "invalidate", "commit", "purge", "poll", "store_error")
#: the events of every read (the hot path): emitted only when a listener wants them
LOOKUP_EVENTS = frozenset({"hit", "miss", "stale", "set"})

GlobalListener = Callable[..., None]

_lock = threading.Lock()
_listeners: tuple[GlobalListener, ...] = ()
# (listener, the events it wants or None for all), in registration order
_subscriptions: tuple[tuple[GlobalListener, frozenset[str] | None], ...] = ()
#: whether some listener wants the per-read events
wants_lookups = False
# Every live Stats, so that registering a listener turns their ``listening`` flag on.
_instances: weakref.WeakSet[Any] = weakref.WeakSet()


def listeners() -> tuple[GlobalListener, ...]:
    """Return the process-wide listeners, in registration order."""
    return _listeners


def subscriptions() -> tuple[tuple[GlobalListener, frozenset[str] | None], ...]:
    """Return ``(listener, events or None)`` pairs, in registration order."""
    return _subscriptions


def instances() -> list[Any]:
    """Return the live :class:`~cachedeps.stats.Stats` of every cache of the process."""
    with _lock:
        return list(_instances)


def _publish(subs: tuple[tuple[GlobalListener, frozenset[str] | None], ...]) -> None:
    global _listeners, _subscriptions, wants_lookups
    _subscriptions = subs
    _listeners = tuple(fn for fn, _ in subs)
    wants_lookups = any(only is None or only & LOOKUP_EVENTS for _, only in subs)


def add_listener(fn: GlobalListener, only: Iterable[str] | None = None) -> None:
    """Call ``fn(cache, event, key, **detail)`` on every cache's events (idempotent).

    Args:
        only: the event names ``fn`` wants (default: all of :data:`EVENTS`).

    Raises:
        ValueError: ``only`` names an unknown event.
    """
    wanted = None if only is None else frozenset([only] if isinstance(only, str) else only)
    if wanted is not None and not wanted <= set(EVENTS):
        raise ValueError(f"unknown event(s) {sorted(wanted - set(EVENTS))}; events: {', '.join(EVENTS)}")
    with _lock:
        if fn in _listeners:
            return
        _publish((*_subscriptions, (fn, wanted)))
        instances = list(_instances)
    for stats in instances:
        stats.refresh()


def remove_listener(fn: GlobalListener) -> None:
    """Stop calling ``fn``; an unknown listener is ignored."""
    with _lock:
        _publish(tuple((f, only) for f, only in _subscriptions if f != fn))
        instances = list(_instances)
    for stats in instances:
        stats.refresh()


def _register(stats: Any) -> None:
    """Track a new :class:`~cachedeps.stats.Stats` (called by its constructor)."""
    with _lock:
        _instances.add(stats)
