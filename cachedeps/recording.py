"""Record the dependency keys a computation reads.

A computation (a view, a fragment, a query) runs inside ``with cache.recording() as rec``;
every read it makes calls :func:`record` with the keys it depends on, and a cache hit
records the hit entry's own dependencies (and a reference to the entry, ``"@<key>"``, used
to link the dependency tree view → fragment → query). When the computation's result is
stored, ``rec.keys`` become its dependencies.

Recorders nest: :func:`record` adds to every active recorder, so what an inner computation
reads also counts for the outer one. The stack lives in a :class:`contextvars.ContextVar`,
so it follows asyncio tasks and threads started with :func:`contextvars.copy_context`,
and concurrent requests never see each other's keys.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Iterable, Iterator

__all__ = ["Recorder", "recording", "record", "record_many", "active", "ENTRY_REF", "RECORDERS"]

#: prefix of a recorded reference to another cached entry
ENTRY_REF = "@"


class Recorder:
    """Collect dependency keys; ``keys`` holds them without repeats."""

    __slots__ = ("keys",)

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def __repr__(self) -> str:
        return f"<Recorder {len(self.keys)} keys>"


_STACK: contextvars.ContextVar[tuple[Recorder, ...]] = contextvars.ContextVar(
    "cachedeps_recorders", default=()
)

#: the open recorders of this context (hot paths test ``RECORDERS.get()`` instead of
#: calling :func:`active`)
RECORDERS = _STACK


@contextmanager
def recording() -> Iterator[Recorder]:
    """Open a recorder for the duration of the ``with`` block."""
    rec = Recorder()
    token = _STACK.set((*_STACK.get(), rec))
    try:
        yield rec
    finally:
        _STACK.reset(token)


def active() -> bool:
    """Return whether any recorder is open in this context."""
    return bool(_STACK.get())


def record(*keys: str) -> None:
    """Add ``keys`` to every active recorder."""
    for rec in _STACK.get():
        rec.keys.update(keys)


def record_many(keys: Iterable[str]) -> None:
    """Add every key of an iterable to every active recorder."""
    stack = _STACK.get()
    if not stack:
        return
    keys = tuple(keys)
    for rec in stack:
        rec.keys.update(keys)
