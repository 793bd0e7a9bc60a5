"""Leases: one process fills a missing entry, the others wait (Scaling Memcache at Facebook, NSDI'13).

On a miss, :meth:`Leases.acquire` tries ``add(l:<ns><key>, token, ttl)``. The winner
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

Two mechanisms, chosen once per :class:`Leases` on first use:

- *native* when the store offers meta-protocol leases (``store.meta_leases()`` returns a
  :class:`~cachedeps.store.meta.MetaLeases`: memcached >= 1.6, ``cachedeps serve``, or a
  pool of them): ``mg <lease> N<ttl> c`` creates the lease in the server and answers ``W``
  to exactly one caller; the token is the lease's CAS id, checked before the fill and on
  release (``md <lease> C<cas>``), so a lease deleted or marked stale (``md I``) since it was
  won voids the fill.
- *emulated* everywhere else (the embedded store, older memcached): ``add``/``gets``/
  ``delete``, which every memcache-compatible store supports.

Both keep the lease under the same key, and each sees the other's lease as held, so
processes that chose differently still exclude each other.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable

from .api import NO_VALUE

__all__ = ["Leases"]


_MAX_HELD = 4096  # native leases won and not yet released, kept per process (I4)


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
        self._meta: Any = None  # MetaLeases, False (emulate) or None (not chosen yet)
        self._held: dict[bytes, int] = {}  # token -> CAS id of a native lease won
        self._pending: dict[str, int] = {}  # lease key -> CAS id won by is_out, not yet claimed
        self._evicting = threading.Lock()

    @property
    def mechanism(self) -> str:
        """Return ``"native"``, ``"emulated"``, or ``"undecided"`` before the first lease."""
        if self._meta is None:
            return "undecided"
        return "native" if self._meta else "emulated"

    def _native(self) -> Any:
        """Return the store's :class:`~cachedeps.store.meta.MetaLeases`, or ``None`` to emulate."""
        meta = self._meta
        if meta is None:
            offer = getattr(self.store, "meta_leases", None)
            # A probe that fails (server down) raises and leaves the choice for next time.
            meta = (offer() if callable(offer) else None) or False
            self._meta = meta
        return meta or None

    def new_token(self) -> bytes:
        """Return a token no other holder uses."""
        return os.urandom(8).hex().encode("ascii")

    def acquire(self, lease_key: str, token: bytes) -> bool:
        """Try to take the lease; return whether this caller won it.

        Raises:
            BackendError: the store failed (the caller computes without a lease).
        """
        meta = self._native()
        if meta is None:
            return bool(self.store.add(lease_key, token, self.ttl))
        cas = self._pending.pop(lease_key, 0) or meta.acquire(lease_key, self.ttl)
        if not cas:
            return False
        self._remember(self._held, token, cas)
        return True

    def _remember(self, table: dict, name: Any, cas: int) -> None:
        if len(table) >= _MAX_HELD:  # wins never released (or never claimed): forget the oldest
            with self._evicting:
                for old in list(table)[: len(table) - _MAX_HELD + 1]:
                    table.pop(old, None)
        table[name] = cas

    def holds(self, lease_key: str, token: bytes) -> bool:
        """Return whether the lease is still ours (not voided by an invalidation)."""
        meta = self._native()
        if meta is None:
            got = self.store.gets(lease_key)
            return got is not None and got[0] == token
        cas = self._held.get(token)
        return cas is not None and meta.holds(lease_key, cas)

    def release(self, lease_key: str, token: bytes | None = None) -> None:
        """Drop the lease (a native one only while it is still the one ``token`` won)."""
        cas = self._held.pop(token, None) if token is not None else None
        meta = self._meta
        if meta and cas is not None:
            meta.release(lease_key, cas)
        elif meta and token is not None:
            return  # the native lease was never ours (or was forgotten): leave it alone
        else:
            self.store.delete(lease_key)

    def is_out(self, lease_key: str) -> bool:
        """Return whether someone else holds the lease.

        Natively the check is an attempt to win (``mg N``): any meta read of a lease marked
        stale hands out its win, so the reader must be the one to take it. A lease won here
        is claimed by this process's next :meth:`acquire` of ``lease_key``.
        """
        meta = self._native()
        if meta is None:
            return self.store.get(lease_key) is not None
        if lease_key in self._pending:
            return False
        cas = meta.acquire(lease_key, self.ttl)
        if not cas:
            return True
        self._remember(self._pending, lease_key, cas)
        return False

    def _unclaim(self, lease_key: str) -> None:
        """Give back a lease :meth:`is_out` won when the value arrived meanwhile."""
        cas = self._pending.pop(lease_key, 0)
        if cas and self._meta:
            self._meta.release(lease_key, cas)

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
                if not self.is_out(lease_key):
                    value = fetch()
                    if value is not NO_VALUE:
                        self._unclaim(lease_key)
                        return value, "value"
                    return NO_VALUE, "released"
                check_at = now + self.check_interval
            pause = min(pause * 1.5, 0.025)
