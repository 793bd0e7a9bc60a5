"""Feed polls shared by the processes of one host: a slot in shared memory.

Why a request may use a poll it did not run
-------------------------------------------
A request (a unit of work, :func:`cachedeps.unit_of_work`) must see every write whose
commit returned before it began, at time ``T``. On PostgreSQL a statement run outside a
transaction block (autocommit) takes its snapshot when the server starts it, after the
client sent it; every commit that had returned to its client before the statement was sent
is in that snapshot. So a feed poll sent at ``S > T`` with a snapshot of its own sees every
commit the request must see, whoever ran it. Tids are taken at commit, in commit order
(:class:`~cachedeps.feed.SqlFeed`), so a snapshot that holds tid ``H`` and nothing after it
holds every committed change up to ``H``.

Such a poll, in one process, is the process's own: the delta maps are process-wide, so a
request that began before another thread's poll was sent finds its changes applied
(``Cache.poll``: ``covered``). The request must itself have no transaction open (its own poll
``fresh``): then every read it makes afterwards takes a snapshot after the covering poll's;
an open REPEATABLE READ transaction may hold an older one. Across processes the
changes themselves are not shared, only a fact: "a poll sent at ``S`` saw the feed end at
``H``" (:attr:`cachedeps.feed.Poll.exact`: the row at ``H`` stood, nothing after it, the
sequence not behind it). A process whose delta maps stand at exactly ``H`` (every change
up to ``H`` applied, by its own polls) and whose request began before ``S`` would have got
an empty, complete answer from its own poll at ``S``: it skips the poll. A process at any
other position polls as usual.

``CLOCK_MONOTONIC`` (``time.monotonic_ns``) is one clock for every process of a Linux
host (not across time namespaces: the slot's name carries the time namespace, and the
network namespace, since ``127.0.0.1`` names another server in another one). The slot holds
the latest ``(S, H)`` published, written and read under ``flock`` so a reader never sees
``S`` of one poll with ``H`` of another. The file is created mode 0600 in ``/dev/shm``
(or the temporary directory), named from the database's identity, the feed table and the
user id; a slot that cannot be opened, or holds anything but 16 bytes, is not used.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import tempfile
import threading

__all__ = ["PollSlot", "slot_path"]

_FORMAT = struct.Struct("<qq")  # sent (monotonic ns), head tid


def _namespace(kind: str) -> str:
    try:
        return str(os.stat(f"/proc/self/ns/{kind}").st_ino)
    except OSError:
        return "-"


def slot_path(identity: str) -> str:
    """Return the path of the slot shared by every process polling the feed ``identity``."""
    digest = hashlib.blake2b(
        "\0".join((identity, _namespace("time"), _namespace("net"), str(os.getuid()))).encode(), digest_size=12
    ).hexdigest()
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
    return os.path.join(base, f"cachedeps-poll-{digest}")


class PollSlot:
    """The last poll published for one feed: ``(sent, head)`` (see the module docstring)."""

    def __init__(self, identity: str, path: str | None = None) -> None:
        self.identity = identity
        self.path = path or slot_path(identity)
        self._lock = threading.Lock()  # flock is per open file: threads of a process take this too
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            st = os.fstat(fd)
            if st.st_uid != os.getuid() or st.st_mode & 0o077:
                raise OSError(f"poll slot {self.path} is not private to this user")
            if st.st_size < _FORMAT.size:
                with self._locked(fd, fcntl.LOCK_EX):
                    if os.fstat(fd).st_size < _FORMAT.size:
                        os.ftruncate(fd, _FORMAT.size)
            self._map = mmap.mmap(fd, _FORMAT.size)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def __repr__(self) -> str:
        return f"PollSlot({self.path!r})"

    def _locked(self, fd: int, how: int) -> "_Flock":
        return _Flock(fd, how, self._lock)

    def read(self) -> tuple[int, int]:
        """Return ``(sent, head)`` of the latest poll published (``(0, 0)``: none)."""
        with self._locked(self._fd, fcntl.LOCK_SH):
            return _FORMAT.unpack_from(self._map, 0)

    def covers(self, since: int, position: int) -> bool:
        """Return whether a poll sent after ``since`` saw the feed end at ``position``."""
        sent, head = self.read()
        return sent > since and head == position > 0

    def publish(self, sent: int, head: int) -> None:
        """Record that a poll sent at ``sent`` saw the feed end at ``head`` (kept if newest)."""
        with self._locked(self._fd, fcntl.LOCK_EX):
            old, _ = _FORMAT.unpack_from(self._map, 0)
            if sent > old:
                _FORMAT.pack_into(self._map, 0, sent, head)

    def close(self) -> None:
        """Unmap and close the slot."""
        self._map.close()
        os.close(self._fd)


class _Flock:
    def __init__(self, fd: int, how: int, lock: threading.Lock) -> None:
        self.fd, self.how, self.lock = fd, how, lock

    def __enter__(self) -> None:
        self.lock.acquire()
        try:
            fcntl.flock(self.fd, self.how)
        except BaseException:
            self.lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            self.lock.release()
