"""Leases: one process fills a missing entry, the others wait (Scaling Memcache at Facebook, NSDI'13).

On a miss, :meth:`Leases.acquire` tries ``add(<ns>l:<key>, token, ttl)``. The winner
computes the value and fills it; the losers poll the entry with short sleeps, checking now
and then (twice the typical fill time) that the lease is still held. When it is gone
without a value (the holder failed, or an invalidation voided it) a loser tries to take it.
After ``max_wait`` a loser computes the value itself without storing it. A hot key missed
by many requests is computed once.

An invalidation voids outstanding leases (the dependency trees delete the lease keys of the
entries they purge, and ``cache.delete`` deletes the entry's lease). Before storing, the
winner checks with ``gets`` that the lease still holds its token; a fill that started
before a write therefore does not land after it. Even if it did (a lease that expired, a
store restarted), the entry carries the tid it was computed at and would be rejected by
every reader that polled the write.

The leases are emulated with ``add``/``gets``/``delete``, which every memcache-compatible
store supports; memcached's meta-command leases (``mg N``/``W``/``Z``) are not used.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from .api import NO_VALUE

__all__ = ["Leases"]


class Leases:
    """Acquire, check and release fill leases in a store.

    Args:
        store: the :class:`~cachedeps.api.Store`.
        ttl: seconds a lease lives when its holder dies before releasing it.
        min_wait, max_wait: bounds of a loser's wait, in seconds.
    """

    def __init__(self, store: Any, ttl: float = 10.0, min_wait: float = 0.05, max_wait: float = 2.0) -> None:
        self.store = store
        self.ttl = ttl
        self.min_wait = min_wait
        self.max_wait = max_wait
        self._typical = min_wait  # moving average of fill times

    def new_token(self) -> bytes:
        """Return a token no other holder uses."""
        return os.urandom(8).hex().encode("ascii")

    def acquire(self, lease_key: str, token: bytes) -> bool:
        """Try to take the lease; return whether this caller won it.

        Raises:
            BackendError: the store failed (the caller computes without a lease).
        """
        return bool(self.store.add(lease_key, token, self.ttl))

    def holds(self, lease_key: str, token: bytes) -> bool:
        """Return whether the lease is still ours (not voided by an invalidation)."""
        got = self.store.gets(lease_key)
        return got is not None and got[0] == token

    def release(self, lease_key: str) -> None:
        """Drop the lease."""
        self.store.delete(lease_key)

    def observe(self, seconds: float) -> None:
        """Fold one fill time into the typical fill time."""
        self._typical = 0.8 * self._typical + 0.2 * seconds

    @property
    def check_interval(self) -> float:
        """Return how often a waiting loser checks that the lease is still held."""
        return min(self.max_wait, max(self.min_wait, 2 * self._typical))

    def wait(self, fetch: Callable[[], Any], lease_key: str, deadline: float) -> tuple[Any, str]:
        """Wait for the holder's value.

        Polls ``fetch()`` with short sleeps; every :attr:`check_interval` also checks the
        lease. Returns ``(value, "value")`` when the value arrives, ``(NO_VALUE,
        "released")`` when the lease is gone without a value (its holder failed, or an
        invalidation voided it: try to take it), ``(NO_VALUE, "timeout")`` at ``deadline``.

        Raises:
            BackendError: the store failed.
        """
        pause = 0.002
        check_at = time.monotonic() + self.check_interval
        while True:
            time.sleep(pause)
            value = fetch()
            if value is not NO_VALUE:
                return value, "value"
            now = time.monotonic()
            if now >= deadline:
                return NO_VALUE, "timeout"
            if now >= check_at:
                if self.store.get(lease_key) is None:
                    value = fetch()
                    return value, "value" if value is not NO_VALUE else "released"
                check_at = now + self.check_interval
            pause = min(pause * 1.5, 0.025)
