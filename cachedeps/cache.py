"""The cache: derived entries and object states validated locally, never stale.

:class:`Cache` ties the pieces together (see docs/engine.md for the contract):

- :meth:`Cache.poll` brings the process-wide delta maps (:mod:`cachedeps.checkpoints`) up
  to date from the change feed (:mod:`cachedeps.feed`) with one query, and keeps the
  checkpoints in step with the ones shared in the store (read at most once a second).
- A *derived entry* (a query result, a view, a fragment) is stored at ``d:<ns><key>`` in
  the layout of :mod:`cachedeps.entries`: a fixed header with ``stamp`` (the
  ``current_tid`` read before the computation's database reads), then ``deps`` (its
  dependency keys with their implied ``t:*`` keys), then the payload (``bytes`` values as
  they are, others serialized). A read is one store round trip and a local check against
  the delta maps, made before the payload is decoded; an entry stamped after every change
  the maps know needs no look-up at all.
- An *object state* is stored at ``s:<ns><tid>:<oid>`` (RelStorage's ``(tid, oid)`` keys):
  at the tid of the object's last known change, or at checkpoint ``cp0`` when it did not
  change since ``cp1``. A reader looks up the one key its maps name, or both checkpoint keys
  in one ``get_many``. A fill from an old snapshot lands under a key that readers with newer
  polls never read, and the value carries its stamp, checked like a derived entry's.
- Writes: :meth:`Cache.committed` (after a database commit that appended to the feed) and
  :meth:`Cache.invalidate` (store feed) record the change locally at once (read-your-writes
  in the writer's process), purge dependents through the dependency trees
  (:mod:`cachedeps.deps`) and void their leases (:mod:`cachedeps.leases`).

Faults cost hits, never correctness: any :class:`~cachedeps.errors.BackendError` from the
store turns into a miss or a no-op and a warning logged at most once per 30 seconds; a
change the process cannot be sure it saw (a pruned feed, a lost store-feed entry, a store
feed that cannot be read) resets the maps, so entries computed before become misses.
Errors of a database feed propagate unchanged: without the feed no read can be proven current.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from contextlib import AbstractContextManager
from typing import Any, Callable, Iterable

from . import recording as _rec
from .activity import Activity, kind_of
from .api import NO_VALUE
from .checkpoints import BLIND, DeltaMaps, decode_checkpoints, encode_checkpoints
from .deps import DependencyTrees
from .entries import (
    ENTRY_TAG,
    HEADER,
    HEADER_SIZE,
    KIND_BYTES,
    KIND_SERIALIZED,
    encode_entry,
    entry_deps,
    inherited_deps,
)
from .errors import BackendError, ConfigurationError, CorruptValue
from .feed import Feed, Poll, SqlFeed, StoreFeed, feed_key
from .keys import expand, safe_key
from .leases import Leases
from .states import StateMixin
from .stats import Listener, Stats
from .verify import VerifyMixin

__all__ = ["Cache", "default_serializer"]

_log = logging.getLogger("cachedeps")
_REF = _rec.ENTRY_REF
_RECORDERS = _rec.RECORDERS
_UNPACK_HEADER = HEADER.unpack_from
_MAX_MEMO = 4096


def default_serializer() -> Any:
    """Return the default serializer (:class:`cachedeps.serde.MsgpackSerializer`)."""
    from .serde import MsgpackSerializer

    return MsgpackSerializer()


class Cache(StateMixin, VerifyMixin):
    """Dependency-tracked cache over a store and a change feed.

    Args:
        store: a :class:`~cachedeps.api.Store`, or a URL for :func:`cachedeps.open_store`.
        feed: the change feed; default a :class:`~cachedeps.feed.StoreFeed` in ``store``.
        serializer: encodes values; default :class:`cachedeps.serde.MsgpackSerializer`.
        namespace: goes after the kind prefix of every store key (``d:`` entries, ``s:`` states,
            ``t:`` tree nodes, ``l:`` leases, ``cp:`` checkpoints, ``feed:``), so that per-prefix
            store figures show each kind; separates applications or feeds sharing a store.
        max_delta: delta-map size (keys) past which the checkpoints move.
        trees: link entries under their dependencies to purge them on writes.
        checkpoint_interval: seconds between reads of the shared checkpoints.
        warn_interval: seconds between two "cache unavailable" warnings.
        lease_ttl: seconds a fill lease lives if its holder dies.
        shared_polls: the identity of the feed's database (host, port, database, table) to
            share polls with the other processes of this host polling it
            (:mod:`cachedeps.pollshare`); ``None``: polls are shared by this process's
            threads only.

    Example::

        cache = Cache("embedded://", feed=SqlFeed(dialect="sqlite"))
        cache.poll(conn)
        rows = cache.get_or_compute("books:recent", lambda: load(conn), depends_on=["book"])
    """

    def __init__(
        self,
        store: Any,
        feed: Feed | None = None,
        serializer: Any = None,
        namespace: str = "",
        max_delta: int = 10_000,
        *,
        trees: bool = True,
        checkpoint_interval: float = 1.0,
        warn_interval: float = 30.0,
        lease_ttl: float = 10.0,
        shared_polls: str | None = None,
    ) -> None:
        if isinstance(store, str):
            from .config import open_store

            store = open_store(store)
        if max_delta < 1:
            raise ConfigurationError(f"max_delta must be a positive number of keys, got {max_delta!r}")
        if namespace and safe_key(namespace, "") != namespace:
            raise ConfigurationError(
                f"namespace {namespace!r} is not a valid key prefix (printable, no spaces, short)"
            )
        self.store = store
        self.name = getattr(store, "name", repr(store))
        self.serializer = serializer if serializer is not None else default_serializer()
        self.namespace = namespace
        self.feed: Any = feed if feed is not None else StoreFeed(store, namespace, serializer=self.serializer)
        self.checkpoint_interval = checkpoint_interval
        self.warn_interval = warn_interval
        self._maps = DeltaMaps(max_delta)
        self._stats = Stats(self)
        #: recent writes, pages, entry structure and counter samples (:mod:`cachedeps.activity`)
        self.activity = Activity()
        self._trees = DependencyTrees(store, namespace) if trees else None
        self._leases = Leases(store, ttl=lease_ttl)
        self._poll_lock = threading.Lock()
        self._d = "d:" + namespace
        self._skeys: dict[str, str] = {}
        self._krec: dict[str, list[int]] = {}  # entry key -> its kind's [hits, misses]
        self._s = "s:" + namespace
        self._l = "l:" + namespace
        self._cp_key = "cp:" + namespace
        self._cp_checked = float("-inf")
        self._cp_tried: tuple[int, int] | None = None
        self._warned_at = float("-inf")
        self._polled: contextvars.ContextVar[int | None] = contextvars.ContextVar(
            f"cachedeps_polled_{id(self):x}", default=None
        )
        #: when (``time.monotonic_ns``) the newest poll whose changes the maps hold was sent,
        #: if it had a snapshot of its own (0: none): it covers every unit begun before
        self._covered = 0
        self._slot: Any = None
        if shared_polls is not None:
            try:
                from .pollshare import PollSlot

                self._slot = PollSlot(shared_polls)
            except (OSError, ImportError, ValueError) as exc:
                _log.warning("cachedeps: polls not shared between processes (%s)", exc)

    def __repr__(self) -> str:
        return f"<Cache {self.name} ns={self.namespace!r} tid={self._maps.current_tid}>"

    # -- faults ---------------------------------------------------------------------------

    def store_failed(self, exc: BaseException) -> None:
        """Count a store failure and log it at most once per ``warn_interval``.

        Adapters that use the store directly report their failures here, so that one
        warning per interval covers every user of the store.
        """
        self._stats.incr("store_errors")
        if self._stats.watching:
            self._stats.emit("store_error", "", error=exc)
        now = time.monotonic()
        if now - self._warned_at >= self.warn_interval:
            self._warned_at = now
            _log.warning("cache %s unavailable: %s; serving from the database", self.name, exc)

    # -- polling and checkpoints -----------------------------------------------------------

    @property
    def current_tid(self) -> int:
        """Return the newest tid this process has polled."""
        return self._maps.current_tid

    @property
    def maps(self) -> DeltaMaps:
        """Return the delta maps (read-only use: figures, tests)."""
        return self._maps

    def poll(self, conn: Any = None, *, fresh: bool = False) -> int:
        """Bring the delta maps up to date from the feed; return the current tid.

        Call it once per request or unit of work, before reading.

        ``fresh``: the caller knows the poll's statement runs with a snapshot of its own
        (PostgreSQL, no transaction open on ``conn``). Such a poll, sent after an open unit
        of work began, covers it: a fresh poll of a unit that began before a fresh poll of
        this process (another thread's) or, with ``shared_polls``, of another process of
        this host that saw the feed end where this process's maps stand, was sent, uses it
        instead of running its own (see :mod:`cachedeps.pollshare` for why that is never
        stale). Only a fresh poll is replaced: with no transaction open, every read the
        unit makes afterwards takes a snapshot after the covering poll's; a transaction
        already open may hold an older snapshot than the position the maps were moved to.

        Raises:
            Exception: the database's own error when the feed table cannot be read
                (unchanged, with a note naming the table).
        """
        maps = self._maps
        started = time.perf_counter()
        since = _rec.unit_began()
        shared = False
        with self._poll_lock:
            try:
                if not maps.ready:
                    self._start(conn)
                elif fresh and since is not None and maps.view.cp1 != BLIND and (
                    self._covered > since
                    or (self._slot is not None and self._slot_covers(since, maps.current_tid))
                ):
                    shared = True
                else:
                    sent = time.monotonic_ns()
                    p = self.feed.poll(conn, maps.current_tid)
                    self._apply(p)
                    if fresh and p.complete:
                        self._covered = sent
                        if p.exact and self._slot is not None:
                            self._slot_publish(sent, p.tid)
            except BackendError as exc:  # a store feed whose store is down
                self.store_failed(exc)
                maps.blind()
                self._covered = 0
                return maps.current_tid
            now = time.monotonic()
            if now - self._cp_checked >= self.checkpoint_interval:
                self._cp_checked = now
                self._sync_checkpoints(conn)
            for _ in range(3):  # one poll may bring more than max_delta changes
                if not maps.needs_shift():
                    break
                self._shift()
            position = maps.current_tid  # ours: not a later poll of another thread
        self._polled.set(position)
        unit = _rec.unit_stamps()
        if unit is not None:
            unit.setdefault(self, position)
        stats = self._stats
        stats.incr("polls_shared" if shared else "polls")
        self.activity.sample(stats.counters)
        if stats.watching:
            stats.emit("poll", "", tid=position, seconds=time.perf_counter() - started)
        return position

    def _slot_covers(self, since: int, position: int) -> bool:
        try:
            return bool(self._slot.covers(since, position))
        except (OSError, ValueError) as exc:  # a slot that fails is dropped: every request polls
            self._drop_slot(exc)
            return False

    def _slot_publish(self, sent: int, head: int) -> None:
        try:
            self._slot.publish(sent, head)
        except (OSError, ValueError) as exc:
            self._drop_slot(exc)

    def _drop_slot(self, exc: BaseException) -> None:
        _log.warning("cachedeps: poll slot %s failed (%s); polls no longer shared between processes",
                     self._slot, exc)
        self._slot = None

    def ensure_polled(self, conn: Any = None, *, fresh: bool = False) -> int:
        """Poll unless the open unit of work polled this cache already; return the position.

        Inside :func:`cachedeps.unit_of_work` the first call polls and later ones return the
        unit's position at once (its own writes are in the delta maps already: see
        :meth:`committed`); outside a unit every call polls.
        """
        unit = _rec.unit_stamps()
        if unit is not None:
            position = unit.get(self)
            if position is not None:
                return position
        return self.poll(conn, fresh=fresh)

    def polled_in_unit(self) -> bool:
        """Return whether the open unit of work has polled this cache (False outside one)."""
        unit = _rec.unit_stamps()
        return unit is not None and self in unit

    def stamp(self) -> int:
        """Return the position a value computed in this context is stamped with.

        A value must be stamped with a position polled *before* the reads it was computed
        from; the process-wide :attr:`current_tid` may have been moved past a write the
        value predates by another thread's poll. In order: the position when the outermost
        open :meth:`recording` began; the first poll of the open unit of work
        (:func:`cachedeps.recording.unit`); this context's last :meth:`poll`; 0 (a stamp
        older than every horizon: the value is not stored).
        """
        best: int | None = None
        for rec in _RECORDERS.get():
            if rec.owner is self and rec.stamp is not None and (best is None or rec.stamp < best):
                best = rec.stamp
        if best is not None:
            return best
        unit = _rec.unit_stamps()
        if unit is not None and self in unit:
            return unit[self]
        polled = self._polled.get()
        return 0 if polled is None else polled

    def _apply(self, p: Poll) -> None:
        self._stats.incr("changes_polled", len(p.changes))
        if p.changes:
            self.activity.polled(p.changes)
        if p.complete:
            self._maps.apply(p.changes, p.tid)
        else:
            self._reset(p.tid)

    def _reset(self, tid: int) -> None:
        self._stats.incr("resets")
        self._maps.reset(tid)

    def _start(self, conn: Any) -> None:
        """Fill the maps of a new process from the shared checkpoints, or start afresh."""
        shared = self._read_checkpoints()
        if shared is not None:
            cp0, cp1 = shared
            p = self.feed.poll(conn, cp1)
            self._stats.incr("changes_polled", len(p.changes))
            if p.complete and p.tid >= cp0:
                self._maps.build(cp0, cp1, p.changes, p.tid)
                return
            self._reset(p.tid)
            return
        head = self.feed.head(conn)
        self._maps.reset(head)
        self._guarded(self.store.add, self._cp_key, encode_checkpoints(head, head))

    def _read_checkpoints(self) -> tuple[int, int] | None:
        try:
            shared = decode_checkpoints(self.store.get(self._cp_key))
        except BackendError as exc:
            self.store_failed(exc)
            return None
        self._stats.kind("checkpoints", shared is not None)
        return shared

    def _guarded(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except BackendError as exc:
            self.store_failed(exc)
            return None

    def _sync_checkpoints(self, conn: Any) -> None:
        """Adopt the shared checkpoints when they differ from ours (or publish ours)."""
        maps = self._maps
        got = self._guarded(self.store.gets, self._cp_key)
        self._stats.kind("checkpoints", got is not None)
        view = maps.view
        if view.cp1 == BLIND:
            return
        mine = encode_checkpoints(view.cp0, view.cp1)
        if got is None:
            self._guarded(self.store.add, self._cp_key, mine)
            return
        shared = decode_checkpoints(got[0])
        if shared is None:
            self._guarded(self.store.cas, self._cp_key, mine, got[1])
            return
        if shared == (view.cp0, view.cp1):
            return
        if maps.adopt(*shared):
            self._stats.incr("checkpoint_adoptions")
            return
        if shared == self._cp_tried or shared[0] > maps.current_tid:
            return
        # The shared checkpoints are behind our horizon: one poll from their cp1 recovers
        # the hits on entries computed since then (tried once per pair).
        self._cp_tried = shared
        try:
            p = self.feed.poll(conn, shared[1])
        except BackendError as exc:
            self.store_failed(exc)
            return
        if p.complete and p.tid >= shared[0]:
            maps.build(shared[0], shared[1], p.changes, p.tid)
            self._stats.incr("checkpoint_adoptions")

    def _shift(self) -> None:
        """Move the checkpoints (the maps passed their limit) and publish the move."""
        maps = self._maps
        new0, new1 = maps.shifted()
        got = self._guarded(self.store.gets, self._cp_key)
        if got is None:
            self._guarded(self.store.add, self._cp_key, encode_checkpoints(new0, new1))
        else:
            shared = decode_checkpoints(got[0])
            if shared is not None and shared[1] > maps.horizon and maps.adopt(*shared):
                self._stats.incr("checkpoint_adoptions")
                if not maps.needs_shift():
                    return  # another process moved them already
                new0, new1 = maps.shifted()
            self._guarded(self.store.cas, self._cp_key, encode_checkpoints(new0, new1), got[1])
        maps.adopt(new0, new1)
        self._stats.incr("checkpoint_shifts")

    # -- derived entries --------------------------------------------------------------------

    def _entry_key(self, key: str) -> str:
        """Return the store key of entry ``key`` (memoized: hits skip the key checks)."""
        skey = self._skeys.get(key)
        if skey is None:
            skey = safe_key(self._d, key)
            if len(self._skeys) >= _MAX_MEMO:
                self._skeys.clear()
            self._skeys[key] = skey
        return skey

    def _kind_record(self, key: str) -> list[int]:
        """Return the ``[hits, misses]`` counters of ``key``'s kind (memoized like store keys)."""
        rec = self._stats.kinds[kind_of(key)]
        if len(self._krec) >= _MAX_MEMO:
            self._krec.clear()
        self._krec[key] = rec
        return rec

    def get(self, key: str, default: Any = NO_VALUE) -> Any:
        """Return the cached value of ``key`` if it is current, else ``default``.

        Never raises for a store that is down (that is a miss). A hit records the entry's
        dependencies in the active recorders.
        """
        # The hot path of every cached read: one store get, then local validation, without
        # per-hit allocations beyond the value itself (docs/engine.md, "Cost of a hit").
        try:
            raw = self.store.get(self._skeys.get(key) or self._entry_key(key))
        except BackendError as exc:
            self.store_failed(exc)
            raw = None
        return self.load_entry(key, raw, default)

    def load_entry(self, key: str, raw: bytes | None, default: Any = NO_VALUE, *, ref: bool = True) -> Any:
        """Validate entry bytes the caller read from the store itself; return the value or ``default``.

        For adapters that keep an entry under a key of their own (``set(..., store_key=...)``)
        or fetch it together with other keys in one round trip. Counts, records and emits
        exactly as :meth:`get` does; ``ref=False`` records the entry's dependency keys without
        the ``"@<key>"`` reference (an entry kept under the caller's own store key, which
        :meth:`set` could not find to inherit from).
        """
        stats = self._stats
        if raw is None:
            stats.counters["misses"] += 1
            (self._krec.get(key) or self._kind_record(key))[1] += 1
            if stats.listening:
                stats.emit("miss", key)
            return default
        try:
            tag, stamp, kind, n = _UNPACK_HEADER(raw)
            if tag != ENTRY_TAG:
                raise CorruptValue("not a cachedeps entry")
            deps = None
            if n:
                # Stamped at or after the horizon and every change the maps hold: current
                # whatever it depends on, so the dependency keys are not even read.
                if stamp < self._maps.floor:
                    deps = raw[HEADER_SIZE : HEADER_SIZE + n].decode("utf-8").split("\x00")
                    if not self._maps.valid(stamp, deps):
                        stats.counters["stale"] += 1
                        (self._krec.get(key) or self._kind_record(key))[1] += 1
                        self.activity.stale_read(key, stamp, self._changed_since(stamp, deps))
                        if stats.listening:
                            stats.emit("stale", key, tid=stamp)
                        return default
            if kind == KIND_BYTES:
                value = raw[HEADER_SIZE + n :]
            elif kind == KIND_SERIALIZED:
                value = self.serializer.loads(raw[HEADER_SIZE + n :])
            else:
                raise CorruptValue(f"unknown payload kind {kind}")
            stack = _RECORDERS.get()
            if stack:
                _rec.record_many(entry_deps(raw, n) if deps is None else deps, self)
                if ref:
                    _rec.record(_REF + key, owner=self)
                    stack[-1].children.add(key)
        except Exception:  # corrupt, foreign or older-layout bytes: a miss
            stats.counters["misses"] += 1
            (self._krec.get(key) or self._kind_record(key))[1] += 1
            if stats.listening:
                stats.emit("miss", key, corrupt=True)
            return default
        stats.counters["hits"] += 1
        (self._krec.get(key) or self._kind_record(key))[0] += 1
        if stats.listening:
            stats.emit("hit", key, tid=stamp)
        return value

    def set(
        self,
        key: str,
        value: Any,
        depends_on: Iterable[str] = (),
        timeout: float | None = None,
        tid: int | None = None,
        store_key: str | None = None,
    ) -> bool:
        """Store ``value`` under ``key``, valid until one of ``depends_on`` changes.

        Args:
            depends_on: dependency keys (and ``"@<key>"`` references to the entries the
                value was built from, whose dependency keys the entry inherits: it is not
                stored when one of them is missing or outdated); without any, the value is
                plain and always valid.
            timeout: seconds to keep it (``None``: until evicted or invalidated).
            tid: the position read before the computation's database reads (default:
                :meth:`stamp`, never the position at the time of the ``set``).
            store_key: keep the entry under this store key (already valid for the store)
                instead of the engine's own; read it back with :meth:`load_entry`.

        Returns whether the value was stored (not when it is already outdated or the store
        is down).

        Raises:
            SerializationError: the value cannot be encoded.
        """
        stamp = self.stamp() if tid is None else int(tid)
        deps, sources = self._split(depends_on)
        if sources:
            inherited = self._source_deps(sources, stamp, deps)
            if inherited is None:
                return False
            deps = list(dict.fromkeys([*deps, *inherited]))
        if deps and not self._maps.valid(stamp, deps):
            return False  # computed from data older than a change we know of
        raw = encode_entry(stamp, deps, value, self.serializer)
        stack = _RECORDERS.get()
        if stack:  # built inside another computation: one of its children
            stack[-1].children.add(key)
        skey = self._entry_key(key) if store_key is None else store_key
        expire = timeout or 0
        try:
            self.store.set(skey, raw, expire)
            if self._trees is not None and (deps or sources):
                self._trees.link(skey, deps, [safe_key(self._d, s) for s in sources], expire)
        except BackendError as exc:
            self.store_failed(exc)
            return False
        self._stats.incr("sets")
        if self._stats.listening:
            self._stats.emit("set", key, tid=stamp, deps=deps)
        return True

    def _source_deps(self, sources: list[str], stamp: int, deps: list[str]) -> list[str] | None:
        """Return the dependency keys the entries ``sources`` name (one ``get_many``), or None.

        See :func:`cachedeps.entries.inherited_deps`.
        """
        skeys = {s: self._entry_key(s) for s in dict.fromkeys(sources)}
        try:
            found = self.store.get_many(list(skeys.values()))
        except BackendError as exc:
            self.store_failed(exc)
            return None
        return inherited_deps([found.get(k) for k in skeys.values()], self._maps.valid, stamp, deps)

    @staticmethod
    def _split(depends_on: Iterable[str]) -> tuple[list[str], list[str]]:
        """Return (expanded feed-spelled dependency keys, referenced entry keys)."""
        if isinstance(depends_on, str):
            raise TypeError(
                f"depends_on must be a collection of keys, not the string {depends_on!r}; "
                f"write depends_on=[{depends_on!r}]"
            )
        plain: list[str] = []
        sources: list[str] = []
        for k in depends_on:
            if k.startswith(_REF):
                sources.append(k[len(_REF) :])
            else:
                plain.append(k)
        deps = list(dict.fromkeys(feed_key(k) for k in expand(plain)))
        return deps, sources

    def delete(self, key: str) -> None:
        """Delete the entry of ``key`` (and void its fill lease)."""
        skey = safe_key(self._d, key)
        self._guarded(self.store.delete_many, [skey, self._lease_key(skey)])
        self._stats.incr("deletes")

    def _lease_key(self, skey: str) -> str:
        return self._l + skey[len(self._d) :]

    def get_or_compute(
        self,
        key: str,
        fn: Callable[[], Any],
        depends_on: Iterable[str] = (),
        timeout: float | None = None,
    ) -> Any:
        """Return the cached value of ``key``, or compute it with ``fn()`` and store it.

        One caller at a time computes (the lease holder); others wait briefly for its value,
        then compute without storing. Keys recorded while ``fn`` runs are added to
        ``depends_on``.
        """
        value = self.get(key)
        if value is not NO_VALUE:
            return value
        skey = safe_key(self._d, key)
        lkey = self._lease_key(skey)
        if not isinstance(depends_on, str):  # a str raises TypeError below, before any lease
            depends_on = list(depends_on)
        known, _ = self._split(depends_on)
        leases = self._leases
        token = leases.new_token()
        deadline = time.monotonic() + leases.max_wait
        while True:
            try:
                won: bool | None = leases.acquire(lkey, token)
            except BackendError as exc:
                self.store_failed(exc)
                won = None  # no store: compute, and the set below is a no-op
            if won is not False:
                break
            self._stats.incr("lease_waits")
            try:
                value, status = leases.wait(lambda: self.get(key), lkey, deadline)
            except BackendError as exc:
                self.store_failed(exc)
                value, status = NO_VALUE, "timeout"
            if status == "value":
                return value
            if status == "timeout":
                self._stats.incr("lease_timeouts")
                value, _ = self._compute(key, fn, depends_on)
                return value
        if won:
            self._stats.incr("lease_wins")
            if self._trees is not None:  # a purge during the computation voids the lease
                self._guarded(self._trees.link_lease, skey, lkey, known, leases.ttl)
        stamp = self._maps.current_tid
        started = time.monotonic()
        try:
            value, deps = self._compute(key, fn, depends_on)
            leases.observe(time.monotonic() - started)
            if deps is not None and (not won or self._guarded(leases.holds, lkey, token)):
                self.set(key, value, deps, timeout, tid=stamp)
        finally:
            if won:
                self._guarded(leases.release, lkey, token)
        return value

    def _compute(self, key: str, fn: Callable[[], Any], depends_on: Iterable[str]) -> tuple[Any, list[str] | None]:
        """Run ``fn`` recording; return its value and dependencies (None: poisoned, do not store)."""
        depends_on = list(depends_on)
        with _rec.recording(self) as rec:
            value = fn()
        _rec.record_many(depends_on, self)
        _rec.record(_REF + key, owner=self)
        if rec.poisoned is not None:
            _log.debug("not caching %s: it read %s", key, rec.poisoned)
            return value, None
        return value, [*depends_on, *rec.keys]

    # -- recording ----------------------------------------------------------------------------

    def recording(self) -> AbstractContextManager[_rec.Recorder]:
        """Return a context manager collecting the dependency keys read inside it.

        The recorder keeps this cache's position when it opens (``rec.stamp``): a
        :meth:`set` inside it, without ``tid``, is stamped with it.
        """
        return _rec.recording(self, self._maps.current_tid)

    def record(self, *keys: str) -> None:
        """Add dependency keys to every active recorder of this cache (others are poisoned)."""
        _rec.record(*keys, owner=self)

    def poison(self, reason: str) -> None:
        """Mark every active recorder: the computation read data no dependency key covers.

        A poisoned computation (``rec.poisoned``) is not stored by :meth:`get_or_compute`,
        ``@cached_view`` or fragments. Adapters call it for every read they do not cache.
        """
        _rec.poison(reason)

    # -- writes -------------------------------------------------------------------------------

    def invalidate(self, *keys: str) -> int:
        """Record a change of ``keys`` in the store feed, purge dependents; return the tid.

        For application state outside a database. With a :class:`~cachedeps.feed.SqlFeed`,
        call ``feed.append(conn, keys)`` inside the transaction and :meth:`committed` after it.

        Raises:
            ConfigurationError: the cache's feed is a database feed.
            BackendError: the store cannot record the change.
        """
        if isinstance(self.feed, SqlFeed):
            raise ConfigurationError(
                "cache.invalidate() needs a StoreFeed; with SqlFeed call feed.append(conn, keys) "
                "inside the transaction and cache.committed(keys, tid) after the commit"
            )
        if not keys:
            return self._maps.current_tid
        tid = self.feed.append(None, keys)
        if tid <= self._maps.current_tid:
            # The counter restarted behind this process: the poll moves it past our
            # position and resets (entries computed before the change become misses).
            self.poll(None)
        self.committed(keys, tid)
        return tid

    def committed(self, keys: Iterable[str], tid: int, *, advance: bool = True) -> None:
        """Mark ``keys`` changed at ``tid`` after the transaction that appended them committed.

        Updates this process's delta maps at once, purges dependents from the store and
        voids their leases. Store failures are logged, never raised.

        With ``advance=False`` the context's stamp stays where it is: the call may come just
        before the COMMIT (an adapter with no hook after it), which may still fail, and then
        ``tid`` may go to another transaction. Marking the keys early only costs hits.
        """
        norm = list(dict.fromkeys(feed_key(k) for k in keys))
        if not norm:
            return
        self._maps.record(norm, tid)
        if advance and isinstance(self.feed, SqlFeed):
            # A SQL feed's tids are taken at COMMIT in commit order, so every lower tid had
            # committed before this one: what this context computes from now on reads data
            # at least that new, and may be stamped with it (read-your-own-writes).
            polled = self._polled.get()
            if polled is None or polled < tid:
                self._polled.set(tid)
        stats = self._stats
        stats.incr("invalidations")
        if stats.watching:
            stats.emit("commit", "", keys=norm, tid=tid)
            for k in norm:
                stats.emit("invalidate", k, tid=tid)
        if self._trees is None:
            self.activity.wrote(tid, norm, None)
            return
        purged = self._guarded(self._trees.purge, norm)
        self.activity.wrote(tid, norm, purged or 0)
        if purged:
            stats.incr("purges", purged)
            if stats.watching:
                stats.emit("purge", "", count=purged, tid=tid)

    # -- figures and events --------------------------------------------------------------------

    def _changed_since(self, stamp: int, deps: Iterable[str]) -> list[str]:
        """Return which of ``deps`` changed after ``stamp`` (for explaining a stale read)."""
        last = self._maps.last_change
        return [d for d in deps if last(d) > stamp][:20]

    def inspect(self, key: str) -> tuple[str, int | None, list[str], int]:
        """Return ``(status, stamp, dependency keys, size)`` of the entry ``key``, for people.

        ``status`` is ``"current"``, ``"outdated"`` (a dependency changed after its stamp),
        ``"missing"`` (not in the store) or ``"unreadable"``. Counts nothing, records
        nothing, fills nothing.

        Raises:
            BackendError: the store cannot be reached.
        """
        raw = self.store.get(self._entry_key(key))
        if raw is None:
            return "missing", None, [], 0
        try:
            tag, stamp, _, n = _UNPACK_HEADER(raw)
            if tag != ENTRY_TAG:
                raise CorruptValue("not a cachedeps entry")
            deps = entry_deps(raw, n)
        except Exception:
            return "unreadable", None, [], len(raw)
        status = "current" if self._maps.valid(stamp, deps) else "outdated"
        return status, stamp, deps, len(raw)

    def kind_stats(self) -> dict[str, tuple[int, int]]:
        """Return ``{kind: (hits, misses)}`` for pages, fragments, queries, rows, checkpoints, other."""
        return self._stats.kinds_snapshot()

    def stats(self) -> dict[str, Any]:
        """Return counters and the state of the delta maps."""
        out: dict[str, Any] = self._stats.snapshot()
        view = self._maps.view
        out.update(
            current_tid=self._maps.current_tid,
            cp0=None if view.cp0 == BLIND else view.cp0,
            cp1=None if view.cp1 == BLIND else view.cp1,
            delta_size=len(view.after0) + len(view.after1),
            native_trees=bool(self._trees and self._trees.native),
        )
        return out

    def add_listener(self, fn: Listener) -> None:
        """Call ``fn(event, key, **detail)`` on this cache's events (:mod:`cachedeps.events`).

        For every cache of the process at once, use :func:`cachedeps.events.add_listener`.
        """
        self._stats.add_listener(fn)

    def remove_listener(self, fn: Listener) -> None:
        """Stop calling ``fn``."""
        self._stats.remove_listener(fn)
