"""Units of work: one feed poll for a request, a task, a command or a script.

A read must be validated against the change feed, so a cache has to be polled before it
answers. Inside a unit of work each cache is polled once, at its first read (or first
``ensure_polled``), and every later read of the unit is answered from that poll plus the
process's own writes: one feed query for the whole unit, then hits. Outside a unit every
read that goes through :meth:`cachedeps.Cache.ensure_polled` polls for itself.

Staleness contract, the same as a request's: a unit sees every write committed before its
first poll (in any process), and every write this process committed since (its own writes:
:meth:`cachedeps.Cache.committed` records them in the process's delta maps at once). A
write another process commits *during* the unit may be missed by the unit's later reads,
as by a request's. A long unit is a long request: open one per job, never around a loop
that serves requests or consumes a queue.

Units nest; an inner unit is a fresh one (it polls again at its first read), so a unit
opened for a task or a request inside a longer one never reads older data than it would
alone. The scope lives in a :class:`contextvars.ContextVar`: it follows asyncio tasks and
threads started with :func:`contextvars.copy_context`, and concurrent units never share it.

Example::

    import cachedeps

    with cachedeps.unit_of_work():        # one feed poll for the loop, not one per read
        for pk in pks:
            process(Book.objects.get(pk=pk))
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from . import recording as _rec

__all__ = ["unit_of_work", "in_unit_of_work"]


@contextmanager
def unit_of_work() -> Iterator[None]:
    """Poll each cache's feed at most once inside this block (a request, a task, a script).

    The first poll of each cache inside the block also stamps the values computed inside it
    (:meth:`cachedeps.Cache.stamp`). Usable as a decorator of a synchronous function.
    """
    with _rec.unit():
        yield


def in_unit_of_work() -> bool:
    """Return whether a unit of work is open in this context."""
    return _rec.unit_stamps() is not None
