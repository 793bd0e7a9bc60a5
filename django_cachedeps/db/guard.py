"""Poison the open recordings on every statement whose result no dependency key covers.

A ``@cached_view`` or ``{% cachedeps %}`` fragment is stored with the keys its reads
recorded. A read that records none — ``.iterator()``, a query the analysis refuses
(``order_by("?")``, an excluded or unmanaged model), raw SQL, ``Model.objects.raw()``, a
read inside ``nocache()`` or after a write in the same transaction, a query whose
parameters have no exact cache key — would leave the page valid forever. So every
statement that reaches a connection while a recording is open poisons it
(:func:`cachedeps.recording.poison`), except:

- statements run by the read path for a read whose keys it records (inside
  :func:`cachedeps.recording.accounted`), and cachedeps's own bookkeeping (feed polls,
  old-row reads, feed appends: :func:`~.hints.own_statements`);
- transaction control (``BEGIN``, ``SAVEPOINT``, ``RELEASE``, ``ROLLBACK``, ``COMMIT``, ``SET``).

Cache hits run no statement at all. Verify mode's queries use the driver's cursor and are
not seen here.
"""

from __future__ import annotations

from typing import Any, Callable

from cachedeps import recording as _rec

from .hints import in_own_statement

__all__ = ["UncachedReadGuard"]

_RECORDERS = _rec.RECORDERS


class UncachedReadGuard:
    """An ``execute_wrappers`` entry that poisons open recordings (see the module docstring)."""

    def __call__(self, execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: dict) -> Any:
        """Poison the open recordings unless the statement is accounted for; run it."""
        if _RECORDERS.get() and not in_own_statement():
            _rec.poison_statement(sql if isinstance(sql, str) else str(sql))
        return execute(sql, params, many, context)
