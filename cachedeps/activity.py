"""What one process's cache did lately, kept for people to look at (the ``/cachedeps/`` page).

:class:`Activity` holds, per :class:`~cachedeps.cache.Cache` and so per process, bounded
records that cost next to nothing to keep:

- recent *writes*: each committed change set (its tid, the tables, rows and columns its
  keys name, how many cached entries it dropped), and the changes other processes made,
  as this process saw them in the change feed;
- recent *pages*: each page an adapter served or stored, with its hits, misses, size, the
  dependency keys and stamp it was last stored with, and why its last miss happened;
- the *structure* of entries: which entries (fragments, queries) each entry was built from
  and, for queries, the SQL that filled them, so a page's tree can be drawn;
- a *time series*: samples of the hit, miss and write counters, taken at most once per
  bucket by :meth:`Cache.poll`, from which the last minutes are drawn.

Every record is bounded (oldest first out); nothing here is ever read on a cache hit. All
methods are safe to call from several threads: each takes a short lock, and readers get
copies.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from .keys import expand, table_of

__all__ = [
    "Activity",
    "WriteRecord",
    "PageRecord",
    "Bucket",
    "describe_key",
    "describe_write",
    "kind_of",
    "KIND_NAMES",
]

_SEPARATOR = re.compile(r"[:./]")

#: kinds of cached entries, as people call them, in display order
KIND_NAMES = ("pages", "fragments", "queries", "rows", "checkpoints", "other")


def kind_of(key: str) -> str:
    """Return what kind of entry the entry key ``key`` names (one of :data:`KIND_NAMES`).

    Keys are spelled by the adapters: ``view.…`` pages (and their vary rules), ``frag.…``
    template fragments, ``q:…``/``sqla:q:…`` query results; row states and checkpoints are
    counted by the engine itself.
    """
    c = key[:1]
    if c == "v":
        return "pages" if key.startswith("view.") else "other"
    if c == "f":
        return "fragments" if key.startswith("frag.") else "other"
    if c == "q":
        return "queries" if key.startswith("q:") else "other"
    if c == "s":
        return "queries" if key.startswith("sqla:q:") else "other"
    return "other"


def describe_key(key: str) -> str:
    """Return what a dependency key stands for, in plain words (see :mod:`cachedeps.keys`)."""
    table = table_of(key)
    rest = key[len(table):]
    if not rest:
        return f"table {table} (any write to it)"
    if rest == ":*":
        return f"rows of {table} that a write could not name one by one"
    if rest.startswith(":"):
        return f"row {rest[1:]} of {table}"
    if rest.startswith("/"):
        col = rest[1:]
        return f"rows added to or removed from {table}" if col == "*" else f"column {col} of any row of {table}"
    if rest.startswith("."):
        cond, _, changed = rest[1:].partition("/")
        col, _, value = cond.partition("=")
        where = f"rows of {table} where {col} = {value}"
        if not changed:
            return where
        if changed == "*":
            return f"rows added to or removed from {where}"
        return f"column {changed} of {where}"
    return key


@dataclass
class WriteRecord:
    """One committed change set, as this process knows it."""

    tid: int
    at: float  # wall-clock time (``time.time()``) when this process learned of it
    keys: tuple[str, ...]
    dropped: int | None  # entries purged from the store; None: written by another process
    local: bool  # written by this process (else seen in the change feed)

    @property
    def tables(self) -> list[str]:
        """Return the tables the write touched, in the order its keys name them."""
        return list(dict.fromkeys(table_of(k) for k in self.keys))

    @property
    def rows(self) -> list[str]:
        """Return the rows (``table:pk``) the write touched; empty when it named none."""
        return [k for k in self.keys if ":" in k and not k.endswith(":*") and table_of(k) + ":" == k[: len(table_of(k)) + 1]]

    @property
    def columns(self) -> list[str]:
        """Return the columns an update changed (``table.column``); ``*`` marks an insert or delete."""
        out: list[str] = []
        for k in self.keys:
            table = table_of(k)
            if k[len(table):len(table) + 1] == "/":
                out.append(f"{table}.{k[len(table) + 1:]}")
        return list(dict.fromkeys(out))

    @property
    def summary(self) -> str:
        """Return the write in words: what happened to which rows."""
        return describe_write(self.keys)


def describe_write(keys: Sequence[str]) -> str:
    """Return a change set's keys in words: ``"update of bookmark row 7 (title)"``."""
    parts = []
    for table in dict.fromkeys(table_of(k) for k in keys):
        mine = [k for k in keys if table_of(k) == table]
        rows = [k[len(table) + 1:] for k in mine if k[len(table):len(table) + 1] == ":" and k != f"{table}:*"]
        changed = [k[len(table) + 1:] for k in mine if k[len(table):len(table) + 1] == "/"]
        if "*" in changed:
            what = "insert or delete"
            cols = [c for c in changed if c != "*"]
        elif changed:
            what, cols = "update", changed
        else:
            what, cols = "write", []
        if rows:
            where = f"row{'s' if len(rows) > 1 else ''} {', '.join(rows[:5])}{' …' if len(rows) > 5 else ''}"
        elif f"{table}:*" in mine:
            where = "rows it cannot name one by one"
        else:
            where = ""
        text = f"{what} in {table}" + (f", {where}" if where else "")
        if cols:
            text += f" (changed {', '.join(cols[:6])}{' …' if len(cols) > 6 else ''})"
        parts.append(text)
    return "; ".join(parts) or "no keys"


@dataclass
class PageRecord:
    """A page an adapter served or stored recently."""

    key: str  # the entry key (the root of its tree)
    path: str
    visitor: str  # which visitors share this copy, in words
    hits: int = 0
    misses: int = 0
    size: int = 0
    last_at: float = 0.0
    stamp: int | None = None  # the tid it was last stored at
    deps: tuple[str, ...] = ()
    last_miss: str = ""  # why the last miss happened, in words
    last_miss_at: float = 0.0

    @property
    def hit_rate(self) -> float | None:
        """Return hits / (hits + misses), or None before any request."""
        total = self.hits + self.misses
        return self.hits / total if total else None


@dataclass
class Bucket:
    """Counts of one stretch of time on the chart."""

    start: float
    hits: int = 0
    misses: int = 0
    writes: int = 0


@dataclass
class _Sample:
    at: float
    hits: int
    misses: int
    writes: int


class Activity:
    """Bounded records of recent writes, pages, entry structure and counter samples.

    Args:
        max_writes: writes kept (the oldest go first).
        max_pages: pages kept (the least recently served go first).
        max_entries: entries whose children or SQL are kept.
        bucket_seconds: width of one bar of the chart.
        buckets: number of bars (``buckets * bucket_seconds`` is the span shown).
    """

    def __init__(self, max_writes: int = 50, max_pages: int = 50, max_entries: int = 2000,
                 bucket_seconds: float = 10.0, buckets: int = 60) -> None:
        self._lock = threading.Lock()
        self._writes: deque[WriteRecord] = deque(maxlen=max_writes)
        self._local: deque[tuple[int, int]] = deque(maxlen=max_writes)
        #: feed changes polled and not yet sorted into writes: (time, changes)
        self._pending: deque[tuple[float, Sequence[tuple[int, str]]]] = deque(maxlen=200)
        self._pages: OrderedDict[str, PageRecord] = OrderedDict()
        self.max_pages = max_pages
        self._children: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._sql: OrderedDict[str, str] = OrderedDict()
        self.max_entries = max_entries
        self.bucket_seconds = bucket_seconds
        self.buckets = buckets
        self._samples: deque[_Sample] = deque(maxlen=buckets + 1)
        self._next_sample = 0.0
        self.writes_seen = 0
        #: stale reads: entry key -> the dependency keys that had changed (bounded)
        self._stale: OrderedDict[str, tuple[int, tuple[str, ...]]] = OrderedDict()

    # -- writes ------------------------------------------------------------------------

    def wrote(self, tid: int, keys: Iterable[str], dropped: int | None, local: bool = True) -> None:
        """Record a change set committed at ``tid`` (``dropped``: entries purged, None when unknown).

        A change set of this process (``local``) occupies the feed positions
        ``tid - len(keys) + 1 .. tid`` (writers are serialized and write one feed row per
        key): :meth:`polled` skips them when the feed brings them back.
        """
        rec = WriteRecord(int(tid), time.time(), tuple(keys), dropped, local)
        with self._lock:
            if local:
                first = rec.tid - len(rec.keys) + 1
                self._local.append((first, rec.tid))
                if any(not w.local and first <= w.tid <= rec.tid for w in self._writes):
                    # another thread's poll saw it between the commit and this call
                    kept = [w for w in self._writes if w.local or not first <= w.tid <= rec.tid]
                    self._writes.clear()
                    self._writes.extend(kept)
            self._writes.append(rec)
            self.writes_seen += 1

    def polled(self, changes: Sequence[tuple[int, str]]) -> None:
        """Keep changes read from the feed, to be sorted out when someone looks.

        Called on every poll that brought changes, so it only queues them (the last 500 of
        a poll, at most 200 polls); :meth:`_drain` turns them into writes.
        """
        self._pending.append((time.time(), changes[-500:]))

    def _drain(self) -> None:
        """Turn queued feed changes into writes of other processes (called under the lock).

        Changes this process wrote itself are skipped. The feed does not mark where one
        transaction ends: consecutive changes are grouped, and a table's bare key (which
        every write to a table emits first) starts a new group when the group holds keys of
        that table already.
        """
        if not self._pending:
            return
        local = list(self._local)
        lo = min((f for f, _ in local), default=0)
        hi = max((t for _, t in local), default=-1)
        added = False
        while self._pending:
            at, changes = self._pending.popleft()
            group: list[tuple[int, str]] = []
            tables: set[str] = set()
            for tid, key in changes:
                if lo <= tid <= hi and any(first <= tid <= last for first, last in local):
                    continue
                bare = _SEPARATOR.search(key) is None
                if group and (group[-1][0] != tid - 1 or (bare and key in tables)):
                    self._add_polled(at, group)
                    added = True
                    group, tables = [], set()
                group.append((tid, key))
                tables.add(key[:m.start()] if (m := _SEPARATOR.search(key)) else key)
            if group:
                self._add_polled(at, group)
                added = True
        if added and any(a.tid > b.tid for a, b in zip(self._writes, list(self._writes)[1:])):
            ordered = sorted(self._writes, key=lambda w: w.tid)
            self._writes.clear()
            self._writes.extend(ordered)

    def _add_polled(self, at: float, group: list[tuple[int, str]]) -> None:
        self._writes.append(WriteRecord(group[-1][0], at, tuple(k for _, k in group), None, False))
        self.writes_seen += 1

    def writes(self) -> list[WriteRecord]:
        """Return the recent writes, newest first."""
        with self._lock:
            self._drain()
            return list(reversed(self._writes))

    # -- pages -------------------------------------------------------------------------

    def page_hit(self, key: str, path: str, visitor: str, size: int) -> None:
        """Count a page served from the cache."""
        with self._lock:
            page = self._page(key, path, visitor)
            page.hits += 1
            page.size = size
            page.last_at = time.time()

    def page_stored(self, key: str, path: str, visitor: str, size: int, stamp: int,
                    deps: Sequence[str]) -> None:
        """Count a page rendered after a miss and stored; explain the miss from what came before."""
        now = time.time()
        with self._lock:
            self._drain()
            page = self._page(key, path, visitor)
            page.last_miss = self._explain(page)
            page.last_miss_at = now
            page.misses += 1
            page.size = size
            page.last_at = now
            page.stamp = stamp
            page.deps = tuple(deps)

    def _page(self, key: str, path: str, visitor: str) -> PageRecord:
        page = self._pages.get(key)
        if page is None:
            page = self._pages[key] = PageRecord(key, path, visitor)
            while len(self._pages) > self.max_pages:
                self._pages.popitem(last=False)
        else:
            self._pages.move_to_end(key)
        return page

    def _explain(self, page: PageRecord) -> str:
        """Say why ``page`` was not served from the cache (called under the lock)."""
        stale = self._stale.pop(page.key, None)
        if page.stamp is None and stale is None:
            return ("first request for this page (for this kind of visitor) since the process "
                    "started: nothing was cached yet")
        stamp = stale[0] if stale is not None else page.stamp
        watched = set(stale[1]) if stale is not None else set(expand(page.deps))
        for w in self._writes:  # oldest first: the write that ended the entry
            if stamp is not None and w.tid <= stamp:
                continue
            hit = [k for k in w.keys if k in watched]
            if hit:
                who = "this process" if w.local else "another process"
                return (f"a write by {who} at tid {w.tid} ({w.summary}) touched "
                        f"{describe_key(hit[0])}, which this page was rendered from")
        if stale is not None:
            return (f"the cached copy (stamped at tid {stale[0]}) was outdated: "
                    f"{', '.join(describe_key(k) for k in stale[1][:3])} changed since")
        return ("the cached copy was no longer in the store: it expired (TIMEOUT), was evicted "
                "for memory, or the store was restarted or flushed; no recent write explains it")

    def stale_read(self, key: str, stamp: int, changed: Sequence[str]) -> None:
        """Remember which dependency keys made the entry ``key`` outdated (for :meth:`_explain`)."""
        with self._lock:
            self._stale[key] = (stamp, tuple(changed))
            while len(self._stale) > self.max_entries:
                self._stale.popitem(last=False)

    def pages(self) -> list[PageRecord]:
        """Return copies of the recent pages, most recently served first."""
        with self._lock:
            return [PageRecord(**vars(p)) for p in reversed(self._pages.values())]

    def page(self, key: str) -> PageRecord | None:
        """Return a copy of the record of page ``key``, or None."""
        with self._lock:
            p = self._pages.get(key)
            return None if p is None else PageRecord(**vars(p))

    # -- structure ---------------------------------------------------------------------

    def built_from(self, key: str, children: Iterable[str]) -> None:
        """Remember the entries (fragments, queries) entry ``key`` was built from."""
        kids = tuple(sorted(set(children) - {key}))
        with self._lock:
            self._children[key] = kids
            self._children.move_to_end(key)
            while len(self._children) > self.max_entries:
                self._children.popitem(last=False)

    def children(self, key: str) -> tuple[str, ...]:
        """Return the entries ``key`` was last built from (empty when unknown)."""
        with self._lock:
            return self._children.get(key, ())

    def describe(self, key: str, sql: str) -> None:
        """Remember the SQL that filled the query entry ``key`` (kept up to 2000 characters)."""
        with self._lock:
            self._sql[key] = sql[:2000]
            self._sql.move_to_end(key)
            while len(self._sql) > self.max_entries:
                self._sql.popitem(last=False)

    def sql(self, key: str) -> str | None:
        """Return the SQL that filled ``key``, if this process filled it recently."""
        with self._lock:
            return self._sql.get(key)

    # -- time series -------------------------------------------------------------------

    def sample(self, counters: Mapping[str, int], now: float | None = None, force: bool = False) -> None:
        """Take a sample of the counters, at most once per bucket unless ``force``."""
        now = time.time() if now is None else now
        if not force and now < self._next_sample:
            return
        with self._lock:
            self._drain()
            self._next_sample = now + self.bucket_seconds
            self._samples.append(_Sample(now, counters.get("hits", 0),
                                         counters.get("misses", 0) + counters.get("stale", 0),
                                         self.writes_seen))

    def series(self, counters: Mapping[str, int], now: float | None = None) -> list[Bucket]:
        """Return one :class:`Bucket` per ``bucket_seconds`` over the span, oldest first.

        The span is ``buckets * bucket_seconds``, or shorter since the first sample of a
        process younger than that. The counts between two samples go to the bucket of the
        later sample; the last bucket ends now.
        """
        now = time.time() if now is None else now
        with self._lock:
            self._drain()
            samples = list(self._samples)
            current = _Sample(now, counters.get("hits", 0),
                              counters.get("misses", 0) + counters.get("stale", 0), self.writes_seen)
        width = self.bucket_seconds
        count = self.buckets
        if samples:  # a young process: only the stretch since its first sample
            count = max(1, min(count, int((now - samples[0].at) // width) + 1))
        first = now - width * count
        out = [Bucket(first + i * width) for i in range(count)]
        points = [*samples, current]
        for before, after in zip(points, points[1:]):
            if after.at < first:
                continue
            i = min(count - 1, max(0, int((after.at - first) // width)))
            b = out[i]
            b.hits += max(0, after.hits - before.hits)
            b.misses += max(0, after.misses - before.misses)
            b.writes += max(0, after.writes - before.writes)
        return out

