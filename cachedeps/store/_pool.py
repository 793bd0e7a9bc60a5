"""Connection pools that wait for a free connection instead of failing at once.

pymemcache's ``ObjectPool`` raises ``RuntimeError("Too many objects ...")`` as soon as more
threads than ``max_pool_size`` use one server. :class:`WaitingPool` holds a
``BoundedSemaphore`` of the pool's size: a caller waits for a connection up to the store's
timeout, then gets :class:`PoolExhausted`, which the remote store translates into
:class:`~cachedeps.errors.BackendUnavailable`. PoolExhausted is deliberately not an
``OSError``: pymemcache's HashClient takes a server out of the ring on an OSError, and a
busy pool is no sign of a failing server.

Imported only by :class:`~cachedeps.store.remote.RemoteStore`'s constructor, after
pymemcache was found.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from pymemcache.client.hash import HashClient
from pymemcache.pool import ObjectPool

from ..errors import BackendError

__all__ = ["PoolExhausted", "WaitingPool", "WaitingHashClient", "install_waiting_pool"]


class PoolExhausted(BackendError):
    """Every connection to one server stayed busy for the whole wait."""

    def __init__(self, message: str, server: Any, size: int) -> None:
        super().__init__(message)
        self.server = server
        self.size = size


class WaitingPool(ObjectPool):
    """An ``ObjectPool`` whose ``get`` waits up to ``wait`` seconds for a free object.

    Args:
        creator, after_remove, max_size, idle_timeout: as ``ObjectPool``.
        wait: seconds a caller waits for a free object before :class:`PoolExhausted`.
        server: the server the objects connect to (for the error message).
    """

    def __init__(
        self,
        creator: Callable[[], Any],
        after_remove: Callable[[Any], Any] | None,
        max_size: int,
        idle_timeout: int,
        wait: float,
        server: Any,
    ) -> None:
        super().__init__(creator, after_remove=after_remove, max_size=max_size, idle_timeout=idle_timeout)
        self.wait = wait
        self.server = server
        self._slots = threading.BoundedSemaphore(max_size)

    def get(self) -> Any:
        """Return a free object, waiting up to :attr:`wait` seconds for one.

        Raises:
            PoolExhausted: all ``max_size`` objects stayed in use for the whole wait.
        """
        if not self._slots.acquire(timeout=self.wait):
            raise PoolExhausted(
                f"all {self.max_size} connections to {self.server} stayed busy for {self.wait:g}s",
                self.server,
                self.max_size,
            )
        try:
            return super().get()
        except BaseException:
            self._slots.release()
            raise

    def _drop_used(self, obj: Any) -> bool:
        # Under the pool's lock: whether obj was handed out (and so holds a slot).
        try:
            self._used_objs.remove(obj)
        except ValueError:
            return False
        return True

    def release(self, obj: Any, silent: bool = True) -> None:
        """Give ``obj`` back to the pool and wake one waiting caller."""
        with self._lock:
            was_used = self._drop_used(obj)
            if was_used:
                self._free_objs.append(obj)
                obj._last_used = self._idle_clock()
        if was_used:
            self._slots.release()
        elif not silent:
            raise ValueError(f"{obj!r} is not in use in this pool")

    def destroy(self, obj: Any, silent: bool = True) -> None:
        """Drop ``obj`` (a broken connection) and wake one waiting caller."""
        with self._lock:
            was_used = self._drop_used(obj)
        if was_used:
            self._slots.release()
            if self._after_remove is not None:
                self._after_remove(obj)
        elif not silent:
            raise ValueError(f"{obj!r} is not in use in this pool")

    def clear(self) -> None:
        """Close every object; the slots of objects in use are given back now."""
        with self._lock:
            in_use = len(self._used_objs)
        super().clear()
        for _ in range(in_use):
            self._slots.release()


def install_waiting_pool(client: Any, wait: float) -> None:
    """Replace a fresh ``PooledClient``'s pool with a :class:`WaitingPool` of the same size."""
    old = client.client_pool
    if isinstance(old, WaitingPool):
        return
    client.client_pool = WaitingPool(
        client._create_client,
        after_remove=lambda c: c.close(),
        max_size=old.max_size,
        idle_timeout=old.idle_timeout,
        wait=wait,
        server=client.server,
    )
    old.clear()


class WaitingHashClient(HashClient):
    """A pooled ``HashClient`` whose per-server pools wait (also for servers re-added later).

    Args:
        pool_wait: seconds a caller waits for a connection to one server.
        Other arguments: as ``HashClient`` (with ``use_pooling=True``).
    """

    def __init__(self, *args: Any, pool_wait: float, **kwargs: Any) -> None:
        self._pool_wait = pool_wait
        super().__init__(*args, **kwargs)

    def add_server(self, server: Any, port: Any = None) -> None:
        """Add a server (at start, or when a dead one is retried) with a waiting pool."""
        super().add_server(server, port)
        for client in self.clients.values():
            install_waiting_pool(client, self._pool_wait)
