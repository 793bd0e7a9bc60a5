"""Check every page served during a run against the data it had to show.

The load generator logs, per thread (one connection each, so its requests never overlap):

- ``W  thread seq bookmark_id t_start title importance``: an edit form POST sent;
- ``E  thread seq t_end status``: its response received (302: saved and committed);
- ``R  thread t_start t_end status path q qfeed tdb tfeed [url title importance]...``: a page
  read and the bookmarks it showed, in order (``importance`` is ``-`` for RSS items);
- ``G  thread t_start t_end status bookmark_id q qfeed tdb tfeed [url title importance]``: the
  edit form of a bookmark read (logged in) and what its fields showed: checked like a page
  read of ``/b/<id>/edit/`` (a :class:`Read` with ``form`` true).

After the run the pages are compared with what the database held when each was served,
rebuilt from the seeded rows (read from the database before the run) and the logged writes.
Each thread writes only its own bookmarks, one write at a time, so the writes to a bookmark
are ordered by the thread's sequence numbers. A read that started at ``t`` must reflect
every write whose response came back before ``t`` (its commit had returned); writes still
in flight while it was served (sent before it ended, not answered before it started) may or
may not show. A page that matches no state in that window is stale.
"""

from __future__ import annotations

import html
import itertools
from dataclasses import dataclass, field
from typing import Iterable

__all__ = ["Bookmark", "Write", "Read", "Index", "parse_log", "expected", "check", "Verdict", "PER_PAGE"]

PER_PAGE = 25
HOME_LATEST = 15
FEED_ITEMS = 20
_MAX_IN_FLIGHT = 8  # combinations of in-flight writes tried per page (2**8 at most)


@dataclass(frozen=True)
class Bookmark:
    """A bookmark as seeded: what edits leave alone, and the title and importance they change."""

    id: int
    url: str
    owner: str
    created: float  # any increasing number (epoch seconds)
    tags: frozenset[str]
    title: str
    importance: int


@dataclass
class Write:
    """One edit sent through the form."""

    thread: int
    seq: int
    bookmark: int
    start: float
    title: str
    importance: int
    end: float | None = None  # None: no response (still in flight when the run stopped)
    status: int | None = None

    @property
    def saved(self) -> bool | None:
        """True: committed; False: refused (no change); None: unknown (no response)."""
        return None if self.status is None else self.status == 302


@dataclass
class Read:
    """One page read and the bookmarks it showed, as (url, title, importance or None)."""

    thread: int
    start: float
    end: float
    status: int
    path: str
    queries: int
    feed_queries: int
    db_time: float
    feed_time: float
    items: list[tuple[str, str, int | None]] = field(default_factory=list)
    form: bool = False  # the edit form of a bookmark, not a page read


def parse_log(lines: Iterable[str]) -> tuple[list[Write], list[Read]]:
    """Parse the load generator's log lines (any order, several threads' files joined)."""
    writes: dict[tuple[int, int], Write] = {}
    ends: dict[tuple[int, int], tuple[float, int]] = {}
    reads: list[Read] = []
    for line in lines:
        parts = line.rstrip("\n").split("\t")
        kind = parts[0]
        if kind == "W":
            _, thread, seq, bid, start, title, imp = parts
            writes[(int(thread), int(seq))] = Write(int(thread), int(seq), int(bid), float(start), title, int(imp))
        elif kind == "E":
            _, thread, seq, end, status = parts
            ends[(int(thread), int(seq))] = (float(end), int(status))
        elif kind == "R" or (kind == "G" and len(parts) >= 10):
            thread, start, end, status, path, q, qf, td, tf = parts[1:10]
            if kind == "G":
                path = f"/b/{path}/edit/"
            rest = parts[10:]
            items = []
            for i in range(0, len(rest) - 2, 3):
                imp = rest[i + 2]
                items.append((html.unescape(rest[i]), html.unescape(rest[i + 1]), None if imp == "-" else int(imp)))
            reads.append(Read(int(thread), float(start), float(end), int(status), path,
                              int(q or 0), int(qf or 0), float(td or 0), float(tf or 0), items, kind == "G"))
    for key, (end, status) in ends.items():
        if key in writes:
            writes[key].end, writes[key].status = end, status
    return sorted(writes.values(), key=lambda w: (w.thread, w.seq)), reads


def _query(path: str) -> dict[str, str]:
    out = {}
    if "?" in path:
        for part in path.split("?", 1)[1].split("&"):
            k, _, v = part.partition("=")
            out[k] = v
    return out


class Index:
    """The seeded bookmarks in the orders the pages list them (edits change none but importance)."""

    def __init__(self, seeded: dict[int, Bookmark]) -> None:
        self.seeded = seeded
        newest = sorted(seeded.values(), key=lambda b: (-b.created, -b.id))  # ("-created", "-id")
        self.newest = newest
        self.by_owner: dict[str, list[Bookmark]] = {}
        self.by_tag: dict[str, list[Bookmark]] = {}
        for b in newest:
            self.by_owner.setdefault(b.owner, []).append(b)
            for t in b.tags:
                self.by_tag.setdefault(t, []).append(b)


def expected(path: str, rows: dict[int, tuple[str, int]], index: Index) -> list[tuple[str, str, int | None]] | None:
    """Return the bookmarks ``path`` shows when the rows hold ``rows`` (id -> title, importance).

    None for a page this checker does not model (it is then not checked).
    """
    def item(b: Bookmark, with_importance: bool = True) -> tuple[str, str, int | None]:
        title, imp = rows[b.id]
        return (b.url, title, imp if with_importance else None)

    bare = path.split("?", 1)[0]
    if bare == "/":
        return [item(b) for b in index.newest[:HOME_LATEST]]
    parts = [p for p in bare.split("/") if p]
    if len(parts) == 3 and parts[0] == "b" and parts[2] == "edit" and parts[1].isdigit():
        b = index.seeded.get(int(parts[1]))
        return None if b is None else [item(b)]
    if len(parts) >= 2 and parts[0] == "u":
        mine = index.by_owner.get(parts[1], [])
        if len(parts) == 3 and parts[2] == "feed":
            return [item(b, False) for b in mine[:FEED_ITEMS]]
        if len(parts) != 2:
            return None
        q = _query(path)
        try:
            page = int(q.get("page", "1"))
        except ValueError:
            page = 1
        if q.get("order") == "importance":  # a stable sort keeps ("-created", "-id") among equals
            mine = sorted(mine, key=lambda b: -rows[b.id][1])
        pages = max(1, -(-len(mine) // PER_PAGE))
        page = min(max(page, 1), pages)
        return [item(b) for b in mine[(page - 1) * PER_PAGE: page * PER_PAGE]]
    if len(parts) == 2 and parts[0] == "t":
        return [item(b) for b in index.by_tag.get(parts[1], [])[:PER_PAGE]]
    return None


@dataclass
class Verdict:
    """The outcome of :func:`check`."""

    checked: int = 0
    stale: int = 0
    unchecked: int = 0  # pages not modelled, errors, too many writes in flight to try
    examples: list[str] = field(default_factory=list)
    final_mismatch: list[int] = field(default_factory=list)  # bookmarks whose final row the log cannot explain


def check(seeded: dict[int, Bookmark], writes: list[Write], reads: list[Read],
          final: dict[int, tuple[str, int]] | None = None) -> Verdict:
    """Count the reads that miss a write they had to reflect (see the module docstring).

    ``final``: the rows after the run (id -> title, importance), checked against the log, so a
    checker that lost writes says so instead of passing pages it misjudges.
    """
    verdict = Verdict()
    index = Index(seeded)
    # Writes that may have changed the data (a refused form changes nothing). Each bookmark is
    # written by one thread, one write at a time: its writes end in sequence order.
    by_bookmark: dict[int, list[Write]] = {}
    for w in writes:
        if w.saved is not False:
            by_bookmark.setdefault(w.bookmark, []).append(w)
    for ws in by_bookmark.values():
        ws.sort(key=lambda w: (w.thread, w.seq))
    base = {b.id: (b.title, b.importance) for b in seeded.values()}
    rows = dict(base)  # the writes every read from now on must reflect
    done = dict.fromkeys(by_bookmark, 0)  # per bookmark: how many of its writes those are
    for read in sorted(reads, key=lambda r: r.start):
        if read.status != 200 or expected(read.path, rows, index) is None:
            verdict.unchecked += 1
            continue
        in_flight: list[Write] = []
        for bid, ws in by_bookmark.items():
            n = done[bid]
            while n < len(ws) and ws[n].end is not None and ws[n].end < read.start:
                n += 1
            if n != done[bid]:
                done[bid] = n
                rows[bid] = (ws[n - 1].title, ws[n - 1].importance)
            # Later writes sent before this read ended may or may not show.
            while n < len(ws) and ws[n].start < read.end:
                in_flight.append(ws[n])
                n += 1
        if len(in_flight) > _MAX_IN_FLIGHT:
            verdict.unchecked += 1
            continue
        ok = False
        for k in range(len(in_flight) + 1):
            for subset in itertools.combinations(in_flight, k):
                trial = rows
                if subset:
                    trial = dict(rows)
                    for w in subset:  # in sequence order: a bookmark's latest chosen write wins
                        trial[w.bookmark] = (w.title, w.importance)
                if expected(read.path, trial, index) == read.items:
                    ok = True
                    break
            if ok:
                break
        verdict.checked += 1
        if not ok:
            verdict.stale += 1
            if len(verdict.examples) < 5:
                want = expected(read.path, rows, index) or []
                diff = [(g, w) for g, w in zip(read.items, want) if g != w][:1]
                got, should = diff[0] if diff else (len(read.items), len(want))
                verdict.examples.append(f"{read.path} read at {read.start:.3f}: served {got}, expected {should}")
    if final is not None:
        for bid in seeded:
            ws = by_bookmark.get(bid, [])
            last_saved = [w for w in ws if w.saved]
            allowed = {(w.title, w.importance) for w in ws if w.saved is None}
            allowed.add((last_saved[-1].title, last_saved[-1].importance) if last_saved else base[bid])
            if final.get(bid) not in allowed:
                verdict.final_mismatch.append(bid)
    return verdict
