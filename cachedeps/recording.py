"""Record the dependency keys a computation reads.

A computation (a view, a fragment, a query) runs inside ``with cache.recording() as rec``;
every read it makes calls :func:`record` with the keys it depends on, and a cache hit
records the hit entry's own dependencies (and a reference to the entry, ``"@<key>"``, used
to link the dependency tree view → fragment → query). When the computation's result is
stored, ``rec.keys`` become its dependencies.

A recorder opened by :meth:`cachedeps.Cache.recording` also keeps the cache's position when
it opened (``stamp``): a value computed inside it is stamped with it, never with a position
polled later (by this or another thread). :func:`unit` marks one unit of work (a request):
the first poll of each cache inside it fixes the unit's stamp, shared by every task and
thread that copies the context.

Recorders nest: :func:`record` adds to every active recorder, so what an inner computation
reads also counts for the outer one.

Keys mean something only to the cache whose feed they are validated against: each database
has its own change feed and tid sequence (and Django keeps one cache per database alias).
Keys recorded for one cache (``owner``) reach the recorders of that cache and plain ones; a
recorder owned by another cache is poisoned instead (a view cached in database A's cache
that reads from database B would otherwise never see B's writes).

A read that records no keys (a query the adapter does not cache, streams, cannot analyse,
raw SQL, a ``nocache`` block) would leave a computation that depends on it valid forever:
the adapters call :func:`poison` for it, which marks every active recorder, and a poisoned
computation is not stored (``rec.poisoned`` holds the first reason). Statements an adapter
runs for a read whose keys it records, or for its own bookkeeping, run inside
:func:`accounted` and do not poison. The stack lives in a :class:`contextvars.ContextVar`,
so it follows asyncio tasks and threads started with :func:`contextvars.copy_context`,
and concurrent requests never see each other's keys.
"""

from __future__ import annotations

import contextvars
import re
import time
from contextlib import contextmanager
from typing import Iterable, Iterator

__all__ = [
    "Recorder", "recording", "record", "record_many", "active", "poison", "accounted", "is_accounted",
    "poison_statement", "unit", "unit_stamps", "unit_began",
    "ENTRY_REF", "RECORDERS",
]

#: prefix of a recorded reference to another cached entry
ENTRY_REF = "@"


class Recorder:
    """Collect dependency keys; ``keys`` holds them without repeats.

    ``poisoned`` is None, or why the computation read something no key covers (then its
    result must not be stored).
    """

    __slots__ = ("keys", "poisoned", "owner", "stamp", "children")

    def __init__(self, owner: object = None, stamp: int | None = None) -> None:
        self.keys: set[str] = set()
        #: the cached entries read or stored directly inside this recorder (not inside a
        #: nested one): what the computation was built from, for drawing its tree
        self.children: set[str] = set()
        self.poisoned: str | None = None
        #: the cache whose position ``stamp`` is (``None``: a plain recorder)
        self.owner = owner
        #: the owner's position when the recorder opened
        self.stamp = stamp

    def __repr__(self) -> str:
        extra = f" poisoned by {self.poisoned!r}" if self.poisoned else ""
        return f"<Recorder {len(self.keys)} keys{extra}>"


_STACK: contextvars.ContextVar[tuple[Recorder, ...]] = contextvars.ContextVar(
    "cachedeps_recorders", default=()
)

_UNIT: contextvars.ContextVar[dict[object, int] | None] = contextvars.ContextVar(
    "cachedeps_unit", default=None
)

#: the open recorders of this context (hot paths test ``RECORDERS.get()`` instead of
#: calling :func:`active`)
RECORDERS = _STACK


@contextmanager
def recording(owner: object = None, stamp: int | None = None) -> Iterator[Recorder]:
    """Open a recorder for the duration of the ``with`` block."""
    rec = Recorder(owner, stamp)
    token = _STACK.set((*_STACK.get(), rec))
    try:
        yield rec
    finally:
        _STACK.reset(token)


def active() -> bool:
    """Return whether any recorder is open in this context."""
    return bool(_STACK.get())


def record(*keys: str, owner: object = None) -> None:
    """Add ``keys`` to every active recorder (of ``owner``, the cache they belong to)."""
    for rec in _STACK.get():
        if owner is None or rec.owner is None or rec.owner is owner:
            rec.keys.update(keys)
        elif rec.poisoned is None:
            rec.poisoned = f"a read from another cache's database ({owner!r})"


def record_many(keys: Iterable[str], owner: object = None) -> None:
    """Add every key of an iterable to every active recorder (see :func:`record`)."""
    stack = _STACK.get()
    if not stack:
        return
    keys = tuple(keys)
    for rec in stack:
        if owner is None or rec.owner is None or rec.owner is owner:
            rec.keys.update(keys)
        elif rec.poisoned is None:
            rec.poisoned = f"a read from another cache's database ({owner!r})"


def poison(reason: str) -> None:
    """Mark every active recorder: the computation read data no dependency key covers."""
    for rec in _STACK.get():
        if rec.poisoned is None:
            rec.poisoned = reason


_ACCOUNTED: contextvars.ContextVar[bool] = contextvars.ContextVar("cachedeps_accounted", default=False)


@contextmanager
def accounted() -> Iterator[None]:
    """Mark the statements run inside as covered by recorded keys (or bookkeeping)."""
    token = _ACCOUNTED.set(True)
    try:
        yield
    finally:
        _ACCOUNTED.reset(token)


def is_accounted() -> bool:
    """Return whether the current statement runs inside :func:`accounted`."""
    return _ACCOUNTED.get()


_CONTROL = re.compile(
    r"\s*(?:BEGIN|SAVEPOINT|RELEASE|ROLLBACK|COMMIT|END|START\s+TRANSACTION|SET)\b", re.IGNORECASE
)


def poison_statement(sql: str) -> None:
    """Poison the active recorders for a statement an adapter saw run, unless it is accounted
    for (:func:`accounted`) or only controls the transaction (BEGIN, SAVEPOINT, RELEASE,
    ROLLBACK, COMMIT, SET)."""
    if _STACK.get() and not _ACCOUNTED.get() and not _CONTROL.match(sql):
        poison(f"an uncached statement: {sql[:120]}")


_UNIT_BEGAN: contextvars.ContextVar[int | None] = contextvars.ContextVar("cachedeps_unit_began", default=None)


@contextmanager
def unit() -> Iterator[dict[object, int]]:
    """Open a unit of work: each cache's first poll inside it is the unit's stamp."""
    token = _UNIT.set({})
    began = _UNIT_BEGAN.set(time.monotonic_ns())
    try:
        yield _UNIT.get()  # type: ignore[misc]
    finally:
        _UNIT_BEGAN.reset(began)
        _UNIT.reset(token)


def unit_began() -> int | None:
    """Return when the open unit of work began (``time.monotonic_ns()``), or ``None`` outside one.

    Every commit that returned before it must be seen by the unit's reads: a feed poll whose
    statement was sent after it, with a snapshot of its own, does (see ``Cache.poll``).
    """
    return _UNIT_BEGAN.get()


def unit_stamps() -> dict[object, int] | None:
    """Return the open unit's ``{cache: first polled position}``, or ``None`` outside one."""
    return _UNIT.get()
