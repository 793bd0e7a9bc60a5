"""Opt a block of code or one queryset out of the cache.

- ``with django_cachedeps.nocache(): ...`` — every ORM read inside runs on the database and
  fills nothing (contextvar: per thread and asyncio task).
- ``django_cachedeps.uncached(qs)`` — a copy of ``qs`` whose queries bypass the cache; it
  survives chaining (``uncached(qs).filter(...).count()``). ``CachedQuerySet.nocache()`` is
  the same as a method.
- ``django_cachedeps.cached(qs, timeout=60)`` (``CachedQuerySet.cache(timeout=60)``) — a copy
  of ``qs`` whose results are kept at most ``timeout`` seconds (0: no limit), whatever
  ``CACHEDEPS["TIMEOUT"]`` and the per-model timeouts say; it also undoes ``nocache()``.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Iterator, TypeVar

__all__ = ["nocache", "uncached", "cached", "query_timeout", "bypassed", "query_opted_out",
           "own_statements", "in_own_statement"]

_HINT = "cachedeps_nocache"
_TIMEOUT_HINT = "cachedeps_timeout"
_nocache: contextvars.ContextVar[bool] = contextvars.ContextVar("cachedeps_nocache", default=False)
_own: contextvars.ContextVar[bool] = contextvars.ContextVar("cachedeps_own", default=False)

Q = TypeVar("Q")


@contextlib.contextmanager
def nocache() -> Iterator[None]:
    """Run the ORM reads inside this block on the database, without reading or filling the cache."""
    token = _nocache.set(True)
    try:
        yield
    finally:
        _nocache.reset(token)


def bypassed() -> bool:
    """Return whether the current context is inside :func:`nocache`."""
    return _nocache.get()


def uncached(queryset: Q) -> Q:
    """Return a copy of ``queryset`` whose queries (and those chained from it) bypass the cache."""
    clone = queryset._chain()  # type: ignore[attr-defined]
    # Query.clone() copies the instance __dict__, so the hint follows every chained query.
    setattr(clone.query, _HINT, True)
    return clone


def cached(queryset: Q, timeout: float | None = None) -> Q:
    """Return a copy of ``queryset`` cached again (undoing :func:`uncached`), its results kept at
    most ``timeout`` seconds (``None``: the model's timeout; 0: no limit).

    Raises:
        ValueError: ``timeout`` is negative or not a number of seconds.
    """
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not timeout >= 0):
        raise ValueError(f"cache(timeout=...) takes seconds >= 0 (0: no limit) or None, got {timeout!r}")
    clone = queryset._chain()  # type: ignore[attr-defined]
    setattr(clone.query, _HINT, False)
    setattr(clone.query, _TIMEOUT_HINT, timeout)
    return clone


def query_timeout(query: Any) -> float | None:
    """Return the timeout :func:`cached` gave ``query`` (or the query an aggregate wraps), or None."""
    while query is not None:
        timeout = getattr(query, _TIMEOUT_HINT, None)
        if timeout is not None:
            return timeout
        query = getattr(query, "inner_query", None)
    return None


def query_opted_out(query: Any) -> bool:
    """Return whether ``query`` (or the query an aggregate wraps) carries the opt-out hint, or
    is an ``explain()``: a plan (with ANALYZE, the query run and timed) is never cached."""
    while query is not None:
        if getattr(query, _HINT, False) or getattr(query, "explain_info", None) is not None:
            return True
        query = getattr(query, "inner_query", None)
    return False


@contextlib.contextmanager
def own_statements() -> Iterator[None]:
    """Mark the statements run inside as issued by cachedeps itself (not tracked again)."""
    token = _own.set(True)
    try:
        yield
    finally:
        _own.reset(token)


def in_own_statement() -> bool:
    """Return whether the current statement comes from cachedeps's own write bookkeeping."""
    return _own.get()
