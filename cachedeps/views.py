"""Reads of database views: depend on the view's base tables, which is what writers change.

A write to a view's base table emits that table's keys, never the view's: a read keyed on
the view (its field-value keys, its rows' oids) would never be invalidated. So an adapter
caches a read of a view only when its base tables are declared, and then adds their table
keys (:func:`~cachedeps.keys.table_key`, :func:`~cachedeps.keys.all_rows_key`) to the
read's own: any write to a base table drops it. A read of an undeclared view is not cached.

The other way round, a write through a view (an updatable view, or one with ``INSTEAD OF``
triggers or rules) changes its base tables' rows: it emits their keys too
(:func:`through_views`), and every cached table's keys when the view's base tables are not
declared (it may be over any of them).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from .keys import all_rows_key, table_key

__all__ = ["tables_in", "base_keys", "over_views", "through_views"]


def tables_in(keys: Iterable[str], tables: Iterable[str]) -> list[str]:
    """Return which of ``tables`` the dependency keys ``keys`` name (``t``, ``t.c=v``, ``t:pk``, ``t/c``)."""
    keys = list(keys)
    found = []
    for table in tables:
        prefixes = (table + ".", table + ":", table + "/")
        if any(k == table or k.startswith(prefixes) for k in keys):
            found.append(table)
    return found


def base_keys(bases: Iterable[str]) -> list[str]:
    """Return the table and all-rows keys of each base table."""
    return [k for b in dict.fromkeys(bases) for k in (table_key(b), all_rows_key(b))]


def over_views(keys: Sequence[str], views: Mapping[str, Sequence[str] | None]) -> list[str] | None:
    """Return ``keys`` plus the base tables' keys of every view they name; None to not cache.

    ``views`` maps each view to its declared base tables, or to None when they are unknown
    (an undeclared view: the read is not cached).
    """
    bases = _bases(keys, views, None)
    return None if bases is None else list(dict.fromkeys([*keys, *base_keys(bases)]))


def through_views(
    keys: Sequence[str], views: Mapping[str, Sequence[str] | None], every_table: Iterable[str]
) -> list[str]:
    """Return a write's ``keys`` plus the base tables' keys of every view they name.

    ``views`` maps each view to its declared base tables, or to None when they are unknown:
    a write through such a view emits the keys of ``every_table`` (every cached table).
    """
    bases = _bases(keys, views, list(every_table))
    assert bases is not None
    return list(dict.fromkeys([*keys, *base_keys(bases)]))


def _bases(
    keys: Sequence[str], views: Mapping[str, Sequence[str] | None], unknown: Sequence[str] | None
) -> list[str] | None:
    """Return the base tables of the views ``keys`` name; ``unknown`` stands for an undeclared
    view's (None: then return None)."""
    bases: list[str] = []
    for view in tables_in(keys, views):
        declared = views[view]
        if declared is None:
            if unknown is None:
                return None
            declared = unknown
        bases.extend(declared)
    return bases
