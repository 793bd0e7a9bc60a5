"""What the cachedeps database wrappers add to Django's: written-transaction tracking and
the raw-SQL write tracker."""

from __future__ import annotations

from typing import Any

from ..guard import UncachedReadGuard
from ..rawsql import RawWriteTracker

__all__ = ["CachedepsWrapperMixin"]


class CachedepsWrapperMixin:
    """Mix in before a vendor's ``DatabaseWrapper``.

    ``cachedeps_written`` is set by every tracked write and cleared when the transaction
    ends (commit, rollback, close): while it is set, reads bypass the cache so the
    transaction reads its own writes.
    """

    cachedeps_written = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.execute_wrappers.append(RawWriteTracker(self))  # type: ignore[attr-defined]
        self.execute_wrappers.append(UncachedReadGuard())  # type: ignore[attr-defined]

    def commit(self) -> None:
        """Commit, and forget that the transaction wrote."""
        try:
            super().commit()  # type: ignore[misc]
        finally:
            self.cachedeps_written = False

    def rollback(self) -> None:
        """Roll back, and forget that the transaction wrote."""
        try:
            super().rollback()  # type: ignore[misc]
        finally:
            self.cachedeps_written = False

    def close(self) -> None:
        """Close, and forget that the transaction wrote."""
        try:
            super().close()  # type: ignore[misc]
        finally:
            self.cachedeps_written = False
