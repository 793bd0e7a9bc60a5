"""Native dependency trees over TCP when the server is ``cachedeps serve``.

``cachedeps serve`` answers ``version`` with ``VERSION 1.6.21 cachedeps/<version>`` and
speaks two commands memcached does not know (docs/server.md)::

    cd_link <parent> <child>+ [T<ttl>]   ->  LINKED <n>
    cd_invalidate <key>+                 ->  INVALIDATED <deleted>

:func:`detect_native_deps` tells whether a :class:`~cachedeps.store.remote.RemoteStore`
talks to such a server, and :class:`ServedDependencies` implements
:class:`~cachedeps.api.DependencyStore` with those commands. Only a single server qualifies:
with a pool, a parent and its dependents may live on different servers, which one server's
atomic invalidation cannot reach, so pools keep the emulated trees of :mod:`cachedeps.deps`.

Example::

    from cachedeps.config import open_store
    from cachedeps.store.served import ServedDependencies, detect_native_deps

    store = open_store("memcache://127.0.0.1:11211")
    if detect_native_deps(store):
        deps = ServedDependencies(store)
        deps.link("book:1", ["q:recent"])
        deps.invalidate(["book:1"])        # deletes q:recent too, atomically
"""

from __future__ import annotations

from typing import Any, Iterable

from ..errors import BackendError, ProtocolError
from ..keys import check_key

__all__ = ["detect_native_deps", "ServedDependencies", "SERVER_MARK", "MAX_LINE"]

#: what ``cachedeps serve`` puts in its version string
SERVER_MARK = "cachedeps/"
#: the longest ``cd_link``/``cd_invalidate`` line sent; longer requests are split
MAX_LINE = 60_000


def detect_native_deps(remote_store: Any) -> bool:
    """Return whether ``remote_store`` is one ``cachedeps serve`` (native dependency trees).

    A server that cannot be reached counts as not native: the engine then uses emulated
    trees, which are correct with any server.
    """
    servers = getattr(remote_store, "servers", ())
    if len(servers) != 1:
        return False
    try:
        return SERVER_MARK in remote_store.server_version()
    except BackendError:
        return False


def _batches(head: bytes, keys: list[bytes], tail: bytes) -> Iterable[list[bytes]]:
    """Split ``keys`` so that each command line stays under :data:`MAX_LINE` bytes."""
    batch: list[bytes] = []
    size = len(head) + len(tail)
    for key in keys:
        if batch and size + len(key) + 1 > MAX_LINE:
            yield batch
            batch, size = [], len(head) + len(tail)
        batch.append(key)
        size += len(key) + 1
    if batch:
        yield batch


class ServedDependencies:
    """:class:`~cachedeps.api.DependencyStore` over a RemoteStore to ``cachedeps serve``.

    Args:
        remote_store: a :class:`~cachedeps.store.remote.RemoteStore` with one server that
            :func:`detect_native_deps` accepted.
    """

    def __init__(self, remote_store: Any) -> None:
        self.remote = remote_store

    def link(self, parent: str, children: Iterable[str], expire: float = 0) -> None:
        """Record that each of ``children`` depends on ``parent`` (for ``expire`` seconds)."""
        head = b"cd_link " + check_key(parent)
        kids = [check_key(c) for c in children]
        tail = b" T%d" % int(expire) if expire else b""
        for batch in _batches(head, kids, tail):
            answer = self.remote._raw(parent, b" ".join([head, *batch]) + tail, b"\r\n")
            if not answer.startswith(b"LINKED"):
                raise ProtocolError(f"cachedeps serve answered {answer[:80]!r} to cd_link {parent!r}")

    def invalidate(self, keys: Iterable[str]) -> int:
        """Delete ``keys`` and everything depending on them; return how many items went.

        Each command is atomic in the server; more keys than fit one command line
        (:data:`MAX_LINE`) are sent as several.
        """
        raw = [check_key(k) for k in keys]
        if not raw:
            return 0
        deleted = 0
        for batch in _batches(b"cd_invalidate", raw, b""):
            answer = self.remote._raw(batch[0].decode(), b"cd_invalidate " + b" ".join(batch), b"\r\n")
            parts = answer.split()
            if len(parts) != 2 or parts[0] != b"INVALIDATED" or not parts[1].isdigit():
                raise ProtocolError(f"cachedeps serve answered {answer[:80]!r} to cd_invalidate")
            deleted += int(parts[1])
        return deleted
