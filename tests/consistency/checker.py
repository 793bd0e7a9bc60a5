"""The stale-read checker: writer and reader processes, one verdict on invariant I1.

I1 says: once a write's commit has returned, no read that starts afterwards, in any
process, returns a value computed from data older than that write. The checker runs an
application's writes and reads in separate processes (``multiprocessing``, spawn), records
when each commit returned and when each read started, and counts the reads that saw a
version older than one whose commit returned before the read started.

Interface (any adapter can reuse it)::

    from tests.consistency import checker

    report = checker.run(
        make_writer,            # make_writer(ctx, index) -> write(item: int) -> int
        make_reader,            # make_reader(ctx, index) -> read(item: int) -> int
        ctx,                    # a picklable dict handed to both factories
        writers=2, readers=3,   # processes of each kind
        items=4,                # items are 0 .. items-1, picked at random
        duration=3.0,           # seconds of load
        faults=[checker.at(1.0, server.restart)],   # run in the parent during the load
    )
    report.assert_ok(min_reads=1000)
    print(report.summary())

- ``make_writer``/``make_reader`` are module-level functions (spawned processes import them).
- ``write(item)`` runs one transaction that makes the item's version larger, and returns
  the version it committed. The harness takes the time ``write`` returned as the commit
  time; a writer that wants a tighter (earlier) time, or that may die between commit and
  invalidation, calls :func:`note_commit` right after its commit returns.
- ``read(item)`` returns the version it saw; the harness takes the time before the call as
  the read's start.
- A reader function may carry a ``stats`` attribute (a callable returning a dict of
  numbers, e.g. ``cache.stats``); the figures are summed into ``report.counters``.
- ``ctx["writer_delay"]``: seconds to sleep between writes (default 0.002).

Clocks: ``time.monotonic()`` is CLOCK_MONOTONIC on Linux, one clock for every process.
Records go to one file per process with unbuffered ``os.write``, so a writer killed with
SIGKILL right after a commit still leaves its commit record behind.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["run", "at", "note_commit", "Report", "StaleRead"]

_FD: int | None = None


def note_commit(item: int, version: int) -> None:
    """Record, durably, that a commit of ``version`` of ``item`` has returned (writers only)."""
    if _FD is not None:
        os.write(_FD, f"w {item} {version} {time.monotonic():.9f}\n".encode())


def at(seconds: float, fn: Callable[[], Any]) -> Callable[[float], None]:
    """Return a fault that calls ``fn()`` ``seconds`` after the load started."""

    def fault(start: float) -> None:
        delay = start + seconds - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        fn()

    fault.__name__ = f"at({seconds}, {getattr(fn, '__name__', fn)!r})"
    return fault


def _wait_start(ready: Any, go: Any, window: Any, *_: Any) -> tuple[float, float]:
    ready.release()
    go.wait()
    start, stop = window[0], window[1]
    while time.monotonic() < start:
        time.sleep(0.001)
    return start, stop


def _stop(window: Any) -> float:
    """The end of the load, which :func:`run` may move later while the load runs."""
    return window[1]


def _writer_main(make_writer: Callable, ctx: dict, index: int, path: str, sync: tuple, items: int) -> None:
    global _FD
    _FD = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    write = make_writer(ctx, index)
    rng = random.Random(index * 7919 + 1)
    delay = float(ctx.get("writer_delay", 0.002))
    _wait_start(*sync)
    window, done = sync[2], sync[3]
    while time.monotonic() < _stop(window):
        item = rng.randrange(items)
        version = write(item)
        note_commit(item, version)
        with done.get_lock():
            done.value += 1
        if delay:
            time.sleep(delay)
    os.close(_FD)


def _reader_main(make_reader: Callable, ctx: dict, index: int, path: str, sync: tuple, items: int) -> None:
    read = make_reader(ctx, index)
    rng = random.Random(index * 104729 + 3)
    lines: list[str] = []
    _wait_start(*sync)
    window = sync[2]
    monotonic = time.monotonic
    while True:
        t0 = monotonic()
        if t0 >= _stop(window):
            break
        item = rng.randrange(items)
        version = read(item)
        lines.append(f"r {item} {version} {t0:.9f}\n")
    stats = getattr(read, "stats", None)
    if stats is not None:
        for name, value in stats().items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                lines.append(f"c {name} {value}\n")
    with open(path, "w") as f:
        f.writelines(lines)


@dataclass
class StaleRead:
    """A read that saw ``seen`` although ``committed`` had returned before it started."""

    item: int
    seen: int
    committed: int
    read_start: float
    commit_returned: float


@dataclass
class Report:
    """What a run did and found."""

    reads: int = 0
    writes: int = 0
    stale: list[StaleRead] = field(default_factory=list)
    counters: dict[str, float] = field(default_factory=dict)
    crashed_writers: int = 0
    duration: float = 0.0

    def summary(self) -> str:
        """Return a one-line summary (reads, writes, stale, hits, misses)."""
        c = self.counters
        return (
            f"reads={self.reads} writes={self.writes} stale={len(self.stale)} "
            f"hits={int(c.get('hits', 0))} misses={int(c.get('misses', 0))} "
            f"rejected={int(c.get('stale', 0))} crashed_writers={self.crashed_writers} "
            f"seconds={self.duration:.1f}"
        )

    def assert_ok(self, min_reads: int = 1, min_writes: int = 1) -> None:
        """Fail unless no read was stale and enough work was checked."""
        print(self.summary(), flush=True)
        assert not self.stale, f"{len(self.stale)} stale read(s), first: {self.stale[:3]}"
        assert self.reads >= min_reads, f"only {self.reads} reads checked (wanted {min_reads})"
        assert self.writes >= min_writes, f"only {self.writes} writes checked (wanted {min_writes})"


def _check(commits: dict[int, list[tuple[float, int]]], reads: list[tuple[int, int, float]]) -> list[StaleRead]:
    """Return the stale reads, given per-item commit records and (item, version, start) reads."""
    import bisect

    stale: list[StaleRead] = []
    index: dict[int, tuple[list[float], list[int]]] = {}
    for item, recs in commits.items():
        recs.sort()
        times = [t for t, _ in recs]
        best: list[int] = []  # the newest version committed up to each time
        m = -1
        for _, v in recs:
            m = max(m, v)
            best.append(m)
        index[item] = (times, best)
    for item, seen, start in reads:
        entry = index.get(item)
        if entry is None:
            continue
        times, best = entry
        i = bisect.bisect_left(times, start) - 1  # commits that returned strictly before
        if i >= 0 and seen < best[i]:
            stale.append(StaleRead(item, seen, best[i], start, times[i]))
    return stale


def run(
    make_writer: Callable[[dict, int], Callable[[int], int]],
    make_reader: Callable[[dict, int], Callable[[int], int]],
    ctx: dict,
    *,
    writers: int = 2,
    readers: int = 3,
    items: int = 4,
    duration: float = 3.0,
    faults: list[Callable[[float], None]] | None = None,
    warmup: float = 0.2,
    min_writes: int = 0,
) -> Report:
    """Run writers and readers in processes for ``duration`` seconds; return the report.

    The load starts ``warmup`` seconds after every process has built its callables. With
    ``min_writes``, the load goes on past ``duration`` (up to four times it) until the writers
    have committed that many writes: a loaded machine checks as much work as an idle one.
    """
    mp = multiprocessing.get_context("spawn")
    workdir = tempfile.mkdtemp(prefix="cachedeps-check-")
    ready = mp.Semaphore(0)
    go = mp.Event()
    window = mp.Array("d", 2)
    done = mp.Value("q", 0)
    sync = (ready, go, window, done)
    procs = []
    for i in range(writers):
        path = os.path.join(workdir, f"w{i}")
        procs.append(("w", path, mp.Process(target=_writer_main, args=(make_writer, ctx, i, path, sync, items))))
    for i in range(readers):
        path = os.path.join(workdir, f"r{i}")
        procs.append(("r", path, mp.Process(target=_reader_main, args=(make_reader, ctx, i, path, sync, items))))
    for _, _, p in procs:
        p.start()
    for _, path, p in procs:
        if not ready.acquire(timeout=120):
            for _, _, q in procs:
                q.kill()
            raise AssertionError("checker processes did not start within 120 s")
    start = time.monotonic() + warmup
    window[0], window[1] = start, start + duration
    go.set()
    threads = [threading.Thread(target=f, args=(start,), daemon=True) for f in faults or ()]
    for t in threads:
        t.start()
    longest = start + 4 * duration
    while True:
        ahead = window[1] - time.monotonic()
        if ahead > 0.5:
            time.sleep(ahead - 0.5)
            continue
        if done.value >= min_writes or window[1] >= longest:
            break
        window[1] = window[1] + 0.5  # before the processes reach the end
    duration = window[1] - start
    for _, _, p in procs:
        p.join(max(window[1] - time.monotonic(), 0) + 60)
        if p.is_alive():
            p.kill()
            p.join()
    for t in threads:
        t.join(5)

    report = Report(duration=duration)
    commits: dict[int, dict[int, float]] = {}
    reads: list[tuple[int, int, float]] = []
    for kind, path, p in procs:
        if kind == "w" and p.exitcode != 0:
            report.crashed_writers += 1
        elif kind == "r" and p.exitcode != 0:
            raise AssertionError(f"reader process {path} failed with exit code {p.exitcode}")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) != 4 and parts[:1] != ["c"]:
                    continue  # a line cut by a kill
                if parts[0] == "w":
                    item, version, t = int(parts[1]), int(parts[2]), float(parts[3])
                    seen = commits.setdefault(item, {})
                    if version not in seen or t < seen[version]:
                        seen[version] = t
                elif parts[0] == "r":
                    reads.append((int(parts[1]), int(parts[2]), float(parts[3])))
                elif parts[0] == "c":
                    report.counters[parts[1]] = report.counters.get(parts[1], 0) + float(parts[2])
    report.writes = sum(len(v) for v in commits.values())
    report.reads = len(reads)
    report.stale = _check({i: [(t, v) for v, t in vs.items()] for i, vs in commits.items()}, reads)
    return report
