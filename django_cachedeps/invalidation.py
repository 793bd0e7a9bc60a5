"""Invalidate by hand what a write cachedeps did not see would have changed.

::

    from django_cachedeps import invalidate_model, invalidate_object

    invalidate_model(Product)        # every cached read of Product's table(s)
    invalidate_object(product)       # every cached read that holds, or may hold, this row

Both emit the keys the ORM's own writes emit (:mod:`.db.writes`, spelled by
:mod:`cachedeps.algebra`), in the current transaction of the model's database: they reach
the change feed at COMMIT (at once outside a transaction), so every process drops the
entries at its next poll, and this process at the commit.

- :func:`invalidate_model` emits what a write to unknown rows of the model's tables emits
  (an ``UPDATE ... WHERE`` cachedeps cannot key row by row): each table's key and all-rows
  key (and a view's base tables' keys), for the model's table and its parents' under
  multi-table inheritance.
- :func:`invalidate_object` reads the object's row(s) back by primary key and emits what
  deleting them would: the oid, the table key, every field-value key of the row as the
  database holds it now and the insert/delete change keys. That reaches every cached read
  that returned the row, and every read that selects rows with its current values. A row
  that cannot be read back (gone, or a primary key its own field cannot filter on) emits
  the table's keys instead. Limit: when something cachedeps does not see (another service's
  SQL) changed the row, reads that matched its *old* values only (a ``count()`` on a value
  it no longer holds) are not reached: use :func:`invalidate_model` there.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, router, transaction

__all__ = ["invalidate_model", "invalidate_object"]


def _concrete(model: Any) -> Any:
    return model._meta.concrete_model


def _chain(model: Any) -> list[Any]:
    """Return the concrete models whose tables hold ``model``'s rows (its parents' too)."""
    return [model, *model._meta.get_parent_list()]


def _emit(using: str, keys: list[str]) -> int:
    """Emit ``keys`` as a write on database ``using`` would; return the tid (0 until COMMIT)."""
    from . import runtime
    from .db.writes import emit

    return emit(runtime.get_engine(using=using), using, keys)


def _active(using: str) -> bool:
    from . import runtime
    from .conf import get_settings

    return get_settings().enabled and runtime.feed_ready(using)


def invalidate_model(model: Any, using: str | None = None) -> int:
    """Drop every cached read of ``model``'s rows, in every process, once the transaction commits.

    Args:
        model: a model class (a proxy stands for its concrete model).
        using: the database whose change feed records it (default: the router's database
            for writes to ``model``).

    Returns the tid of the change (0 inside a transaction, or when nothing is cached).

    Raises:
        TypeError: ``model`` is not a model class.
    """
    if not isinstance(model, type) or not hasattr(model, "_meta"):
        raise TypeError(f"invalidate_model() takes a model class, got {model!r}; for an instance "
                        "use invalidate_object()")
    from .conf import table_is_written_through, unknown_rows_keys

    model = _concrete(model)
    using = using or router.db_for_write(model)
    if not _active(using):
        return 0
    keys: list[str] = []
    for m in _chain(model):
        table = m._meta.db_table
        if table_is_written_through(table):
            keys.extend(unknown_rows_keys(table))
    return _emit(using, keys)


def invalidate_object(obj: Any, using: str | None = None) -> int:
    """Drop every cached read holding (or selecting) ``obj``'s row, in every process, at COMMIT.

    Args:
        obj: a saved model instance.
        using: its database (default: the one it was loaded from or saved to, else the
            router's database for writes).

    Returns the tid of the change (0 inside a transaction, or when nothing is cached).

    Raises:
        TypeError: ``obj`` is not a model instance.
        ValueError: ``obj`` has no primary key (never saved).
    """
    meta = getattr(obj, "_meta", None)
    if meta is None or isinstance(obj, type):
        raise TypeError(f"invalidate_object() takes a model instance, got {obj!r}; for a model class "
                        "use invalidate_model()")
    if obj.pk is None:
        raise ValueError(f"invalidate_object() needs a saved instance: {obj!r} has no primary key")
    from .conf import table_is_written_through
    from .db.writes import _pk_oids, _row_keys, _rows_for_pks, _unknown_rows

    model = _concrete(type(obj))
    using = using or obj._state.db or router.db_for_write(model, instance=obj)
    if not _active(using):
        return 0
    from .db.hints import own_statements

    keys: list[str] = []
    connection = connections[using]
    with own_statements():
        for m in _chain(model):
            table = m._meta.db_table
            if not table_is_written_through(table):
                continue
            pk = getattr(obj, m._meta.pk.attname)
            rows = None if pk is None else _rows_for_pks(m, using, [pk])
            oids = None if pk is None else _pk_oids(table, m._meta.pk, connection, [pk])
            if not rows or oids is None:
                keys.extend(_unknown_rows(table))  # gone or not addressable: its old values are unknown
                continue
            keys.extend(_row_keys(table, rows, {}))  # as deleting the row as it is now
            keys.extend(oids)
    return _emit(using, keys)
