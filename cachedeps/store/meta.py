"""Fill leases on memcached's meta protocol (memcached >= 1.6, ``cachedeps serve``).

A lease is an empty item under its own key (the engine's ``<ns>l:<key>``), created by the
server itself:

- :meth:`MetaLeases.acquire` sends ``mg <lease> N<ttl> c``. On a miss the server creates the
  empty item for ``ttl`` seconds and answers ``W`` (won) with its CAS id, atomically, to one
  caller; every later caller gets ``Z`` (a win was already handed out). A lease marked stale
  by ``md I`` answers ``X W`` to the next caller, who wins it under a new CAS id.
- The CAS id is the lease's token. :meth:`MetaLeases.holds` re-reads it (``gets``) before
  the winner stores its value: a lease deleted or marked stale since (an
  invalidation voided it) has gone or carries another CAS id, and the fill is dropped.
- :meth:`MetaLeases.release` deletes the lease only while it still carries the winner's CAS
  id (``md <lease> C<cas>``), so a holder whose lease was voided and handed to another caller
  never deletes the new holder's lease.
- :meth:`MetaLeases.void` marks a lease stale (``md <lease> I T<ttl>``): the holder's token
  no longer matches, and the next caller wins at once.

A lease from the ``add``-based emulation (:mod:`cachedeps.leases`) answers neither ``W`` nor
``Z``; it counts as held by someone else, so processes using either mechanism on the same
store still exclude each other.

Example::

    from cachedeps.config import open_store

    store = open_store("memcache://127.0.0.1:11211")
    leases = store.meta_leases()           # None when a server lacks the meta protocol
    if leases is not None:
        cas = leases.acquire("l:books", ttl=10)
        if cas:
            ...                            # compute, then store only if leases.holds("l:books", cas)
            leases.release("l:books", cas)
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import BackendUnavailable, ProtocolError
from ..keys import check_key

__all__ = ["MetaLeases", "speaks_meta"]


def speaks_meta(remote_store: Any) -> bool:
    """Return whether every reachable server of ``remote_store`` answers the meta no-op ``mn``.

    A pool server that cannot be reached is left out of the decision (its keys fail
    anyway until it returns), so one dead server does not cost a probe on every miss.

    Raises:
        BackendUnavailable: no server can be reached (ask again later).
    """
    hashed = remote_store._hash
    clients = [remote_store._client] if hashed is None else list(hashed.clients.values())
    unreachable: BackendUnavailable | None = None
    answered = 0
    for client in clients:
        try:
            answer = client.raw_command(b"mn", b"\r\n")
        except Exception as exc:
            try:
                remote_store._translate(exc, _address(client.server))
            except ProtocolError:  # ERROR: a server older than 1.6
                return False
            except BackendUnavailable as down:
                unreachable = down
                continue
        if answer.strip() != b"MN":
            return False
        answered += 1
    if not answered and unreachable is not None:
        raise unreachable
    return answered > 0


def _ttl(seconds: float) -> int:
    # whole seconds, at least one: 0 would make the lease item live forever
    return max(1, int(math.ceil(seconds)))


def _parse(answer: bytes, command: str, key: str) -> tuple[bytes, dict[int, bytes]]:
    """Split a meta reply line into its code and ``{flag: token}``."""
    parts = answer.split()
    if not parts:
        raise ProtocolError(f"empty answer to {command} {key!r}")
    return parts[0], {p[0]: p[1:] for p in parts[1:]}


class MetaLeases:
    """Leases on the meta commands of the server holding each lease key.

    Args:
        remote_store: a :class:`~cachedeps.store.remote.RemoteStore` whose servers all
            passed :func:`speaks_meta`; each command goes to the server the pool's
            consistent hashing assigns to the lease key.
    """

    def __init__(self, remote_store: Any) -> None:
        self.remote = remote_store

    def __repr__(self) -> str:
        return f"<MetaLeases {self.remote.name}>"

    def _send(self, key: str, command: bytes) -> bytes:
        return bytes(self.remote._raw(key, command, b"\r\n"))

    def acquire(self, key: str, ttl: float) -> int:
        """Try to take the lease at ``key`` for ``ttl`` seconds; return its CAS id if won, else 0.

        Raises:
            BackendError: the server failed or answered something unexpected.
        """
        raw = check_key(key)
        code, flags = _parse(self._send(key, b"mg " + raw + b" N%d c" % _ttl(ttl)), "mg", key)
        if code != b"HD":
            raise ProtocolError(f"{self.remote.name} answered {code!r} to mg {key!r} N (expected HD)")
        if 87 not in flags:  # W
            return 0
        cas = flags.get(99, b"")
        if not cas.isdigit() or int(cas) == 0:
            raise ProtocolError(f"{self.remote.name} won a lease on {key!r} without a CAS id")
        return int(cas)

    def holds(self, key: str, cas: int) -> bool:
        """Return whether the lease at ``key`` still carries CAS id ``cas``.

        Read with the classic ``gets``: a meta ``mg`` on a lease marked stale would hand its
        win to this read, and nobody would fill. ``md I`` gives the lease a new CAS id, so a
        voided lease does not match.

        Raises:
            BackendError: the server failed.
        """
        found = self.remote.gets(key)
        return found is not None and found[1] == cas

    def release(self, key: str, cas: int) -> bool:
        """Delete the lease at ``key`` if it still carries ``cas``; return whether it did.

        Raises:
            BackendError: the server failed.
        """
        code, _ = _parse(self._send(key, b"md " + check_key(key) + b" C%d" % cas), "md", key)
        if code not in (b"HD", b"NF", b"EX"):
            raise ProtocolError(f"{self.remote.name} answered {code!r} to md {key!r}")
        return code == b"HD"

    def void(self, key: str, ttl: float) -> bool:
        """Mark the lease at ``key`` stale for ``ttl`` seconds; return whether one was out.

        The holder's fill is then dropped (its CAS id no longer matches) and the next
        caller of :meth:`acquire` wins the lease at once.

        Raises:
            BackendError: the server failed.
        """
        code, _ = _parse(self._send(key, b"md " + check_key(key) + b" I T%d" % _ttl(ttl)), "md", key)
        if code not in (b"HD", b"NF"):
            raise ProtocolError(f"{self.remote.name} answered {code!r} to md {key!r} I")
        return code == b"HD"


def _address(server: Any) -> str:
    if isinstance(server, tuple):
        host, port = server
        return f"{host}:{port}"
    return str(server)

