"""Object states cached under ``(tid, oid)`` keys (RelStorage's checkpoints, reference 001).

The state of one row (oid ``"<table>:<pk>"``) is stored at ``s:<ns><tid>:<oid>`` as
``[stamp, value]``:

- when the delta maps know the oid's last change ``t`` (a change after the horizon), at
  ``s:<t>:<oid>``, and only by a load that started at or after ``t``;
- otherwise (no change since ``cp1``) at checkpoint ``s:<cp0>:<oid>``.

A reader looks up the one key its maps name, or both checkpoint keys in one ``get_many``:
one round trip either way, and one for many oids (:meth:`StateMixin.get_states`). A hit is
validated like a derived entry (its stamp against the horizon and the oid's last change, the
table's ``t:*`` key included), so a fill from an old snapshot is never served, and it lands
under a key that readers with newer polls do not even read. ``None`` is a value like any
other: adapters cache "this row does not exist" as ``None``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from . import recording as _rec
from .api import NO_VALUE
from .checkpoints import BLIND
from .errors import BackendError
from .feed import feed_key
from .keys import implied, safe_key

__all__ = ["StateMixin"]


class StateMixin:
    """The object-state half of :class:`~cachedeps.cache.Cache`.

    Uses the cache's ``store``, ``serializer``, ``_maps``, ``_stats``, ``_s`` (key prefix)
    and ``store_failed``.
    """

    store: Any
    serializer: Any
    _maps: Any
    _stats: Any
    _s: str
    store_failed: Callable[[BaseException], None]

    def _state_deps(self, oid: str) -> list[str]:
        return [feed_key(k) for k in implied(oid)]

    def _state_keys(self, oid: str, deps: list[str]) -> list[str]:
        view = self._maps.view
        if view.cp1 == BLIND:
            return []
        t = self._maps.newest(deps)
        if t:
            return [safe_key(self._s, f"{t}:{oid}")]
        if view.cp0 == view.cp1:
            return [safe_key(self._s, f"{view.cp0}:{oid}")]
        return [safe_key(self._s, f"{view.cp0}:{oid}"), safe_key(self._s, f"{view.cp1}:{oid}")]

    def get_state(self, oid: str) -> Any:
        """Return the cached state of object ``oid`` if current, else NO_VALUE (one round trip)."""
        return self.get_states([oid]).get(oid, NO_VALUE)

    def get_state_meta(self, oid: str) -> tuple[Any, int | None]:
        """Return ``(state or NO_VALUE, its stamp)``, like :meth:`get_state` (verify mode, diagnostics)."""
        stamps: dict[str, int] = {}
        value = self.get_states([oid], stamps).get(oid, NO_VALUE)
        return value, stamps.get(oid)

    def get_states(self, oids: Iterable[str], stamps: dict[str, int] | None = None) -> dict[str, Any]:
        """Return the current cached states of ``oids`` (missing ones left out), in one round trip.

        ``stamps``, when given, receives the stamp of each state returned.
        """
        plan: list[tuple[str, list[str], list[str]]] = []
        wanted: list[str] = []
        for oid in dict.fromkeys(oids):
            deps = self._state_deps(oid)
            keys = self._state_keys(oid, deps)
            plan.append((oid, deps, keys))
            wanted.extend(keys)
        if _rec.active():
            _rec.record_many((oid for oid, _, _ in plan), self)
        found: dict[str, bytes] = {}
        if wanted:
            try:
                found = self.store.get_many(wanted)
            except BackendError as exc:
                self.store_failed(exc)
        out: dict[str, Any] = {}
        stats = self._stats
        for oid, deps, keys in plan:
            result = NO_VALUE
            event = "miss"
            for k in keys:
                raw = found.get(k)
                if raw is None:
                    continue
                try:
                    entry = self.serializer.loads(raw)
                    if type(entry) is not list or len(entry) != 2 or type(entry[0]) is not int:
                        continue
                    stamp, payload = entry
                except Exception:  # corrupt or foreign bytes: a miss
                    continue
                if self._maps.valid(stamp, deps):
                    result, event = payload, "hit"
                    if stamps is not None:
                        stamps[oid] = stamp
                    break
                event = "stale"
            stats.incr("hits" if event == "hit" else "misses" if event == "miss" else "stale")
            stats.incr("state_hits" if event == "hit" else "state_misses" if event == "miss" else "state_stale")
            stats.kind("rows", event == "hit")
            if stats.listening:
                stats.emit(event, oid, state=True)
            if result is not NO_VALUE or event == "hit":
                out[oid] = result
        return out

    def set_state(self, oid: str, value: Any, tid: int | None = None, timeout: float | None = None) -> bool:
        """Store the state of ``oid`` loaded by a database read that started at ``tid``.

        ``tid`` is the position read before the load (default: :meth:`stamp`, never the
        position at the time of the call); ``None`` is a fine value for a row that does not
        exist. ``timeout``: seconds to keep it (``None``: until evicted or outdated), with
        the store's expiry semantics. Returns whether it was stored.
        """
        stamp = self.stamp() if tid is None else int(tid)  # type: ignore[attr-defined]
        deps = self._state_deps(oid)
        maps = self._maps
        view = maps.view
        t = maps.newest(deps)
        if t:
            if t > stamp:
                return False
            skey = safe_key(self._s, f"{t}:{oid}")
        else:
            if stamp < view.cp1:
                return False
            skey = safe_key(self._s, f"{view.cp0}:{oid}")
        raw = self.serializer.dumps([stamp, value])
        try:
            self.store.set(skey, raw, timeout or 0)
        except BackendError as exc:
            self.store_failed(exc)
            return False
        self._stats.incr("sets")
        return True

    def load_state(self, oid: str, loader: Callable[[], Any]) -> Any:
        """Return the state of ``oid`` from the cache, else from ``loader()`` (and cache it)."""
        value = self.get_state(oid)
        if value is not NO_VALUE:
            return value
        stamp = self._maps.current_tid
        value = loader()
        self.set_state(oid, value, tid=stamp)
        return value
