"""Cached results as plain data, merged back into a session as persistent objects.

A cached query result is stored as plain values the safe serializer can write:

``{"c": [column keys], "r": [[cell, ...], ...]}`` where a cell holding an ORM entity is
``{"$e": "<module>.<class>", "s": {attribute: value, ...}}`` (its loaded column attributes)
and any other cell is the value itself. Relationships are not stored: they load lazily on
access (and may be cached themselves, see :class:`~sqla_cachedeps.options.RelationshipCache`).

On a hit the entities are rebuilt detached with
:func:`~sqlalchemy.orm.make_transient_to_detached` and merged with
:func:`~sqlalchemy.orm.loading.merge_frozen_result` (``load=False``): objects already in the
session's identity map are reused, the others join it as persistent objects.
"""

from __future__ import annotations

import weakref
from typing import Any, Sequence

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import FrozenResult, Result
from sqlalchemy.engine.result import IteratorResult, SimpleResultMetaData
from sqlalchemy.orm import Mapper, Session, loading, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.base import instance_state

__all__ = [
    "Unsupported",
    "encode_result",
    "decode_result",
    "encode_state",
    "decode_state",
    "state_cacheable",
    "merge_rows",
    "entity_of",
]

_ENTITY = "$e"
# mapper registry -> {class path: mapper}; weak so that disposed registries go away
_by_path: weakref.WeakKeyDictionary[Any, dict[str, Mapper]] = weakref.WeakKeyDictionary()
# mapper -> whether its rows are cached by oid (computed once per mapper)
_STATE_OK: weakref.WeakKeyDictionary[Mapper, bool] = weakref.WeakKeyDictionary()


class Unsupported(Exception):
    """A result holds something that is not stored (the read then goes uncached)."""


def _path(mapper: Mapper) -> str:
    cls = mapper.class_
    return f"{cls.__module__}.{cls.__qualname__}"


def _mapper_for(path: str, registry: Any) -> Mapper:
    table = _by_path.get(registry)
    if table is None or path not in table:
        table = {_path(m): m for m in registry.mappers}
        _by_path[registry] = table
    try:
        return table[path]
    except KeyError:
        raise Unsupported(f"no mapped class {path!r} in the registry") from None


def state_cacheable(mapper: Mapper) -> bool:
    """Return whether a row of ``mapper`` can be cached under its oid.

    True for a mapper without inheritance whose column attributes are all plain columns of
    its own table (a ``column_property`` over other tables depends on those tables too).
    """
    cached = _STATE_OK.get(mapper)
    if cached is not None:
        return cached
    ok = (
        mapper.inherits is None
        and not mapper.polymorphic_map
        and len(mapper.tables) == 1
        and all(
            getattr(col, "table", None) is mapper.local_table
            for prop in mapper.column_attrs
            for col in prop.columns
        )
    )
    _STATE_OK[mapper] = ok
    return ok


def encode_state(obj: Any) -> dict[str, Any]:
    """Return the loaded column attribute values of an ORM instance."""
    state = instance_state(obj)
    if state.modified:
        raise Unsupported("an instance with unflushed changes is not cached")
    d = state.dict
    return {p.key: d[p.key] for p in state.mapper.column_attrs if p.key in d}


def decode_state(mapper: Mapper, values: dict[str, Any]) -> Any:
    """Return a detached instance of ``mapper`` holding ``values`` as its loaded state."""
    obj = mapper.class_manager.new_instance()
    for key, value in values.items():
        set_committed_value(obj, key, value)
    make_transient_to_detached(obj)
    return obj


def encode_result(frozen: FrozenResult) -> dict[str, Any]:
    """Return a frozen ORM result as plain data.

    Raises:
        Unsupported: a cell holds something other than an entity or a plain value.
    """
    result = frozen()
    columns = list(result.keys())
    out_rows = [[_encode_cell(cell) for cell in row] for row in result]
    return {"c": columns, "r": out_rows}


def _encode_cell(cell: Any) -> Any:
    try:
        state = instance_state(cell)
    except Exception:
        return cell
    if state.mapper.inherits is not None or state.mapper.polymorphic_map:
        raise Unsupported("polymorphic entities are not cached by value")
    return {_ENTITY: _path(state.mapper), "s": encode_state(cell)}


def decode_result(session: Session, statement: Any, data: dict[str, Any], registry: Any) -> Result:
    """Rebuild a cached result and merge its entities into ``session``.

    Raises:
        Unsupported: the data does not match the current mappings.
    """
    if not isinstance(data, dict) or "c" not in data or "r" not in data:
        raise Unsupported("not a cached result")
    rows = []
    for row in data["r"]:
        rows.append(tuple(_decode_cell(cell, registry) for cell in row))
    return merge_rows(session, statement, data["c"], rows)


def _decode_cell(cell: Any, registry: Any) -> Any:
    if isinstance(cell, dict) and _ENTITY in cell:
        mapper = _mapper_for(cell[_ENTITY], registry)
        return decode_state(mapper, cell["s"])
    return cell


def merge_rows(session: Session, statement: Any, columns: Sequence[str], rows: list[tuple]) -> Result:
    """Return a result of ``rows`` with their detached entities merged into ``session``."""
    source = IteratorResult(SimpleResultMetaData(list(columns)), iter(rows))
    frozen = source.freeze()
    return loading.merge_frozen_result(session, statement, frozen, load=False)()


def entity_of(obj: Any) -> Mapper | None:
    """Return the mapper of an ORM instance, or ``None`` for anything else."""
    try:
        return sa_inspect(obj).mapper
    except Exception:
        return None
