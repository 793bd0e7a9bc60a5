"""Verify mode: check cache hits against the database, for tests and production sampling.

With verify on, an adapter that answers a read from the cache also runs the read's query on
the database, in the same connection and transaction the read would have used, and hands
both results to :meth:`Verifier.check`. A difference means the cache served something the
database would not have: a stale read (a write whose keys do not meet the read's), or a
wrong one (two queries sharing a cache key, a codec that changes a value). It raises
:class:`~cachedeps.errors.StaleRead` naming the query, the entry's dependency keys, its stamp
and the feed position the reader had polled; with a sampling fraction it is logged instead.

Settings: ``True`` verifies every hit and raises; a number in ``(0, 1]`` verifies that
fraction of hits and logs a difference at ERROR level (``cachedeps.verify`` logger);
``False``/``None``/``0`` turns it off.

Comparison without false alarms (:func:`compare_rows`):

- values are compared as the driver returns them, but by *type and value*: ``1``, ``1.0``
  and ``True`` differ (a JSON value going from ``1`` to ``true`` is a change); bytes,
  ``bytearray`` and ``memoryview`` are one type, as are lists and tuples (codecs turn one
  into the other); NaN equals NaN; aware datetimes compare by instant;
- rows of a query without a top-level ``ORDER BY`` are compared as multisets; a query with
  one is compared in order, except that a permutation of the same rows is accepted (rows
  that tie on the sort key come back in any order; a difference only in the order of rows
  whose selected values are all equal is not seen, a stated limit);
- a query limited (``LIMIT``/``OFFSET``) without ``ORDER BY`` may return any subset: only
  the row counts are compared, unless the fresh result is shorter than the limit (then it is
  the whole set).
"""

from __future__ import annotations

import datetime
import decimal
import logging
import random
import re
import uuid
from collections import Counter
from typing import Any, Callable, Iterable, Sequence

from .api import NO_VALUE
from .entries import HEADER, entry_deps
from .errors import BackendError, ConfigurationError, StaleRead
from .feed import feed_key
from .keys import expand

__all__ = ["Verifier", "VerifyMixin", "parse_verify", "compare_rows", "sql_shape", "canonical"]

log = logging.getLogger("cachedeps.verify")


def parse_verify(value: Any, name: str = "verify") -> tuple[float, bool]:
    """Return ``(rate, raises)`` for a verify setting.

    Raises:
        ConfigurationError: ``value`` is not a bool, None, or a number in ``[0, 1]``.
    """
    if value is None or value is False:
        return 0.0, False
    if value is True:
        return 1.0, True
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value), False
    raise ConfigurationError(
        f"{name} must be True (verify every hit, raise StaleRead), False, or a fraction in [0, 1] "
        f"(verify that share of hits, log differences), got {value!r}"
    )


class Verifier:
    """Decide which hits to verify and report the differences found.

    Args:
        setting: see the module docstring (``True``, ``False``, or a fraction).
        name: the setting's name, for error messages.

    Example::

        verifier = Verifier(True)
        if verifier.sample():
            verifier.check("SELECT ...", cached_rows, fresh_rows, ordered=False,
                           deps=["book"], stamp=12, position=14)
    """

    def __init__(self, setting: Any = False, name: str = "verify") -> None:
        self.rate, self.raises = parse_verify(setting, name)
        #: hits compared, differences reported, differences excused by a concurrent write
        self.checked = self.reported = self.excused = 0

    def __repr__(self) -> str:
        return f"<Verifier rate={self.rate} raises={self.raises}>"

    @property
    def enabled(self) -> bool:
        """Return whether any hit is verified."""
        return self.rate > 0

    def sample(self) -> bool:
        """Return whether to verify this hit."""
        rate = self.rate
        return rate >= 1 or (rate > 0 and random.random() < rate)

    def check(
        self,
        query: str,
        cached: Sequence[Sequence[Any]],
        fresh: Sequence[Sequence[Any]],
        *,
        ordered: bool = False,
        limited: int | None = None,
        deps: Iterable[str] = (),
        stamp: int | None = None,
        position: int | None = None,
        concurrent: Callable[[], bool] | None = None,
    ) -> bool:
        """Compare cached and fresh rows; report a difference. Return whether they agree.

        Args:
            query: the SQL (or a description) of the read, for the report.
            ordered: the query has a top-level ORDER BY.
            limited: the query's row limit when it has LIMIT/OFFSET (``-1``: an OFFSET or a
                limit that is not a plain number), else None.
            position: the feed position the reader had polled before its hit.
            concurrent: called on a difference; True when a write committed after
                ``position`` touched the entry's keys (the reader may serve the value current
                when it polled: not a stale read). See :meth:`cachedeps.Cache.changed_after`.

        Raises:
            StaleRead: they differ and the verifier raises (``True``).
        """
        self.checked += 1  # figures only: a lost increment under threads does not matter
        difference = compare_rows(cached, fresh, ordered=ordered, limited=limited)
        if difference is None:
            return True
        if concurrent is not None and concurrent():
            self.excused += 1
            log.debug("verify: %s differs, explained by a write committed after position %s", query[:200], position)
            return True
        self.report(query, difference, deps=deps, stamp=stamp, position=position)
        return False

    def report(self, query: str, difference: str, *, deps: Iterable[str] = (), stamp: int | None = None,
               position: int | None = None) -> None:
        """Raise or log a :class:`~cachedeps.errors.StaleRead` for ``query``."""
        deps = tuple(deps)
        shown = ", ".join(deps[:20]) + (f", ... ({len(deps)} keys)" if len(deps) > 20 else "")
        message = (
            f"stale cache hit: {difference}; query {query[:500]!r}; dependency keys [{shown}]; "
            f"entry stamp {stamp}; feed position read {position}"
        )
        self.reported += 1
        error = StaleRead(message, query=query, deps=deps, stamp=stamp, position=position, difference=difference)
        if self.raises:
            raise error
        log.error("%s", message)


class VerifyMixin:
    """What verify mode asks of :class:`~cachedeps.cache.Cache`: an entry's header, the feed."""

    store: Any
    feed: Any
    _skeys: dict[str, str]
    _entry_key: Callable[[str], str]
    store_failed: Callable[[BaseException], None]
    load_entry: Callable[..., Any]

    def get_meta(self, key: str, default: Any = NO_VALUE) -> tuple[Any, int | None, list[str]]:
        """Return ``(value or default, stamp, dependency keys)``: :meth:`get` with the entry's header.

        For verify mode and diagnostics (the hot path is :meth:`get`); counts and records
        exactly as :meth:`get` does.
        """
        try:
            raw = self.store.get(self._skeys.get(key) or self._entry_key(key))
        except BackendError as exc:
            self.store_failed(exc)
            raw = None
        value = self.load_entry(key, raw, default)
        if raw is None or value is default:
            return value, None, []
        _, stamp, _, n = HEADER.unpack_from(raw)
        return value, stamp, entry_deps(raw, n)

    def changed_after(self, conn: Any, position: int, deps: Iterable[str]) -> bool:
        """Return whether the feed holds a change of ``deps`` after ``position`` (or may: a gap).

        Verify mode asks it on a difference: a write that committed after the reader polled
        explains one (the reader may serve what was current when it polled); read on
        ``conn``, after the verify query, it sees every commit that query saw.
        """
        wanted = {feed_key(k) for k in expand(list(deps))}
        p = self.feed.poll(conn, position)
        if not p.complete or any(k in wanted for _, k in p.changes):
            return True
        # A snapshot transaction (SQLite, REPEATABLE READ) older than the position this
        # process polled on another connection sees neither the writes the cache already
        # holds nor their feed rows: the hit may be newer than the snapshot, not stale.
        return bool(self.feed.head(conn) < position)


# -- comparison ----------------------------------------------------------------------------


def canonical(value: Any) -> Any:
    """Return a hashable, type-tagged form of a database value for comparison."""
    if value is None:
        return ("n",)
    if isinstance(value, bool):
        return ("b", bool(value))
    if isinstance(value, int):
        return ("i", int(value))
    if isinstance(value, float):
        return ("f", "nan") if value != value else ("f", float(value))
    if isinstance(value, decimal.Decimal):
        return ("D", "nan") if value.is_nan() else ("D", value)
    if isinstance(value, str):
        return ("s", str(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return ("y", bytes(value))
    if isinstance(value, (list, tuple)):
        return ("l", tuple(canonical(v) for v in value))
    if isinstance(value, dict):
        items = [(canonical(k), canonical(v)) for k, v in value.items()]
        return ("m", tuple(sorted(items, key=repr)))
    if isinstance(value, (set, frozenset)):
        return ("S", tuple(sorted((canonical(v) for v in value), key=repr)))
    if isinstance(value, datetime.datetime):
        return ("dt", value)
    if isinstance(value, (datetime.date, datetime.time, datetime.timedelta, uuid.UUID)):
        return (type(value).__name__, value)
    try:
        hash(value)
    except TypeError:
        return ("o", type(value).__qualname__, repr(value))
    return ("o", type(value).__qualname__, value)


def _rows(rows: Iterable[Any]) -> list[Any]:
    return [canonical(tuple(r)) if isinstance(r, (list, tuple)) else canonical(r) for r in rows]


def _show(rows: Iterable[Any], limit: int = 3) -> str:
    rows = list(rows)
    shown = ", ".join(repr(r)[:200] for r in rows[:limit])
    return f"[{shown}{', ...' if len(rows) > limit else ''}]"


def compare_rows(
    cached: Sequence[Any], fresh: Sequence[Any], *, ordered: bool = False, limited: int | None = None
) -> str | None:
    """Return a description of how ``cached`` differs from ``fresh``, or None if they agree.

    See the module docstring for the rules (multisets for unordered queries, limits).
    """
    a = _rows(cached)
    b = _rows(fresh)
    if a == b:
        return None
    if limited is not None and not ordered and (limited < 0 or len(b) >= limited):
        # Any subset may come back: only the count is determined.
        if len(a) == len(b):
            return None
        return f"{len(cached)} cached rows, {len(fresh)} in the database"
    ca, cb = Counter(a), Counter(b)
    if ca == cb:
        return None  # the same rows: another order of ties (or of an unordered query)
    only_cached = [r for r, key in zip(cached, a) if ca[key] > cb.get(key, 0)]
    only_fresh = [r for r, key in zip(fresh, b) if cb[key] > ca.get(key, 0)]
    return (
        f"{len(cached)} cached rows, {len(fresh)} in the database; only in the cache: {_show(only_cached)}; "
        f"only in the database: {_show(only_fresh)}"
    )


# -- SQL shape ------------------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z_]+|\d+|\S")


def sql_shape(sql: str) -> tuple[bool, int | None]:
    """Return ``(ordered, limited)`` of a SELECT's top level (outside parentheses and quotes).

    ``limited`` is the LIMIT number, ``-1`` for an OFFSET or a limit given as a parameter,
    None without either.
    """
    depth = 0
    ordered = False
    limited: int | None = None
    i, n = 0, len(sql)
    prev = ""
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            end = sql.find(ch, i + 1)
            while end != -1 and end + 1 < n and sql[end + 1] == ch:  # doubled quote
                end = sql.find(ch, end + 2)
            i = n if end == -1 else end + 1
            prev = ""
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and (ch.isalpha() or ch == "_"):
            j = i
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            word = sql[i:j].upper()
            if word == "BY" and prev == "ORDER":
                ordered = True
            elif word == "LIMIT":
                m = re.match(r"\s*(\d+)", sql[j:])
                limited = int(m.group(1)) if m and limited is None else -1
            elif word in ("OFFSET", "FETCH"):
                limited = -1
            prev = word
            i = j
            continue
        elif not ch.isspace():
            prev = ""
        i += 1
    return ordered, limited
