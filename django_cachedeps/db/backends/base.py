"""What the cachedeps database wrappers add to Django's: written-transaction tracking, the
transaction's snapshot stamp, the feed append at COMMIT, and the raw-SQL write tracker."""

from __future__ import annotations

from typing import Any

from ... import checks as _checks  # noqa: F401  (registers cachedeps.E008 without the app)
from ..guard import UncachedReadGuard
from ..rawsql import RawWriteTracker

__all__ = ["CachedepsWrapperMixin"]


class CachedepsWrapperMixin:
    """Mix in before a vendor's ``DatabaseWrapper``.

    ``cachedeps_written`` is set by every tracked write and cleared when the transaction
    ends (commit, rollback, close): while it is set, reads bypass the cache so the
    transaction reads its own writes.

    ``cachedeps_pending`` holds the keys the open transaction wrote, per engine. ``commit``
    appends them to the change feed just before COMMIT (the feed's lock is held for that
    INSERT and the COMMIT only) and hands them to the engine right after, before Django
    runs ``on_commit`` hooks: a hook reading the rows it wrote never meets the old rows.

    ``cachedeps_tx_stamp`` is the engine's position when the current transaction began
    (autocommit turned off, or the previous transaction of a manual-mode connection ended),
    which is before its first statement: whatever the isolation level, its snapshot holds
    every change up to that position, so fills inside the transaction are stamped with it.
    """

    cachedeps_written = False
    cachedeps_tx_stamp: int | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cachedeps_pending: dict[Any, dict[Any, dict[str, None]]] = {}
        self.cachedeps_published: list[tuple[Any, list[str], int]] = []
        self.execute_wrappers.append(RawWriteTracker(self))  # type: ignore[attr-defined]
        self.execute_wrappers.append(UncachedReadGuard())  # type: ignore[attr-defined]

    def _cachedeps_position(self) -> int:
        from ... import runtime

        try:
            return runtime.position(self.alias)  # type: ignore[attr-defined]
        except Exception:  # settings not readable yet: 0 is below every horizon (no fills)
            return 0

    def _cachedeps_end(self) -> None:
        self.cachedeps_written = False
        self.cachedeps_pending = {}
        # A connection in manual mode is in its next transaction at once.
        self.cachedeps_tx_stamp = self._cachedeps_position()

    def set_autocommit(self, autocommit: bool, *args: Any, **kwargs: Any) -> None:
        """Switch autocommit; leaving it begins a transaction: note the engine's position."""
        if not autocommit:
            self.cachedeps_tx_stamp = self._cachedeps_position()
        super().set_autocommit(autocommit, *args, **kwargs)  # type: ignore[misc]

    def commit(self) -> None:
        """Append the transaction's keys to the feed, commit, tell the engines."""
        from ..writes import committed, publish

        published: list[tuple[Any, list[str], int]] = []
        if self.cachedeps_pending:
            # Django's own checks first: no statement runs where Django would refuse.
            self.validate_thread_sharing()  # type: ignore[attr-defined]
            self.validate_no_atomic_block()  # type: ignore[attr-defined]
            published = publish(self)
        try:
            super().commit()  # type: ignore[misc]
        finally:
            self._cachedeps_end()
        self.cachedeps_published = published
        committed(self, published)

    def savepoint_rollback(self, sid: Any) -> None:
        """Roll back to a savepoint, dropping the keys written since."""
        super().savepoint_rollback(sid)  # type: ignore[misc]
        self.cachedeps_pending.pop(sid, None)

    def savepoint_commit(self, sid: Any) -> None:
        """Release a savepoint, giving its keys to the enclosing level."""
        from ..writes import _savepoint

        super().savepoint_commit(sid)  # type: ignore[misc]
        level = self.cachedeps_pending.pop(sid, None)
        if level:
            parent = self.cachedeps_pending.setdefault(_savepoint(self), {})
            for engine, keys in level.items():
                parent.setdefault(engine, {}).update(keys)

    def rollback(self) -> None:
        """Roll back, and forget what the transaction wrote."""
        try:
            super().rollback()  # type: ignore[misc]
        finally:
            self._cachedeps_end()

    def close(self) -> None:
        """Close, and forget what the transaction wrote."""
        try:
            super().close()  # type: ignore[misc]
        finally:
            self.cachedeps_written = False
            self.cachedeps_pending = {}
            self.cachedeps_tx_stamp = None
