"""Leases: one process fills a missing entry, the others wait (Scaling Memcache at Facebook, NSDI'13).

On a miss, :meth:`Leases.acquire` tries ``add(<ns>l:<key>, token, ttl)``. The winner
computes the value and fills it; the losers poll the entry with short sleeps for a bounded
time (twice the typical fill time, between ``min_wait`` and ``max_wait``), then compute the
value themselves without storing it. A hot key missed by many requests is computed once.

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
    def wait_bound(self) -> float:
        """Return how long a loser waits for the winner's value."""
        return min(self.max_wait, max(self.min_wait, 2 * self._typical))

    def wait(self, fetch: Callable[[], Any]) -> Any:
        """Poll ``fetch()`` until it returns a value or the wait bound passes (then NO_VALUE)."""
        deadline = time.monotonic() + self.wait_bound
        pause = 0.002
        while True:
            time.sleep(pause)
            value = fetch()
            if value is not NO_VALUE:
                return value
            if time.monotonic() >= deadline:
                return NO_VALUE
            pause = min(pause * 1.5, 0.025)
