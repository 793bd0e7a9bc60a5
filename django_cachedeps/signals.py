"""Django signals for cache events: ``cache_hit``, ``cache_miss``, ``cache_invalidated``.

::

    from django.dispatch import receiver
    from django_cachedeps.signals import cache_hit, cache_invalidated

    @receiver(cache_invalidated)
    def log_invalidation(sender, keys, tid, **kwargs):
        logger.info("changed at %s: %s", tid, keys)

========================  ==================================================================
signal                    arguments (``sender`` is the :class:`cachedeps.Cache` engine)
========================  ==================================================================
``cache_hit``             ``key`` (the entry: a query key, an oid for an object state, a
                          page or fragment key), ``kind`` (``"entry"`` or ``"state"``)
``cache_miss``            ``key``, ``kind``, ``stale`` (``True``: an entry was found but a
                          change since it was computed rejected it)
``cache_invalidated``     ``keys`` (the dependency keys of one committed change, as
                          :mod:`cachedeps.keys` spells them), ``tid`` (its feed position);
                          in the process that committed it
========================  ==================================================================

They are sent in the thread that read or wrote, right away (a hit, a miss) or once the
change has committed (an invalidation, after the purge of dependents and before Django's
``on_commit`` hooks run). Cheap when nobody listens: the engine builds no event until the
first receiver connects (a process-wide :mod:`cachedeps.events` listener is added then, for
the events of the signals that have receivers: with only ``cache_invalidated`` connected,
hits build no event; it is removed once no receiver is left).
"""

from __future__ import annotations

import threading
from typing import Any

from django.dispatch import Signal

from cachedeps import events

__all__ = ["cache_hit", "cache_miss", "cache_invalidated"]

_lock = threading.Lock()


class _EngineSignal(Signal):
    """A signal that asks the engine for events only while it has receivers."""

    def connect(self, receiver: Any, sender: Any = None, weak: bool = True, dispatch_uid: Any = None) -> None:
        """Connect ``receiver`` (Django's signature) and start listening to the engine."""
        super().connect(receiver, sender=sender, weak=weak, dispatch_uid=dispatch_uid)
        _sync()

    def disconnect(self, receiver: Any = None, sender: Any = None, dispatch_uid: Any = None) -> bool:
        """Disconnect ``receiver``; stop listening to the engine when no signal has one."""
        done = super().disconnect(receiver, sender=sender, dispatch_uid=dispatch_uid)
        _sync()
        return done


cache_hit = _EngineSignal()
cache_miss = _EngineSignal()
cache_invalidated = _EngineSignal()


def _live(signal: Signal) -> bool:
    return bool(signal.receivers) and signal.has_listeners()


def _sync() -> None:
    """Subscribe the engine listener to the events whose signals have receivers, or remove it."""
    with _lock:
        wanted: set[str] = set()
        if _live(cache_hit):
            wanted.add("hit")
        if _live(cache_miss):
            wanted.update(("miss", "stale"))
        if _live(cache_invalidated):
            wanted.add("commit")
        events.remove_listener(_relay)
        if wanted:
            wanted.add("poll")  # to notice receivers garbage-collected
            events.add_listener(_relay, only=wanted)


def _relay(cache: Any, event: str, key: str, **detail: Any) -> None:
    """Turn an engine event into a signal (a :mod:`cachedeps.events` listener)."""
    if event == "hit":
        if cache_hit.receivers:
            cache_hit.send(sender=cache, key=key, kind="state" if detail.get("state") else "entry")
    elif event == "miss" or event == "stale":
        if cache_miss.receivers:
            cache_miss.send(sender=cache, key=key, kind="state" if detail.get("state") else "entry",
                            stale=event == "stale")
    elif event == "commit":
        if cache_invalidated.receivers:
            cache_invalidated.send(sender=cache, keys=list(detail.get("keys", ())), tid=detail.get("tid"))
    elif event == "poll" and not (_live(cache_hit) or _live(cache_miss) or _live(cache_invalidated)):
        _sync()  # every receiver was garbage-collected: stop the engine's events
