"""Failures of the ORMs' own tests under cachedeps that are explained, each with its class
(see :mod:`tests.orm_suites.classify`) and the reason. A test listed here that passes is
fine; a failure not listed (and not query counting) fails the harness."""

from __future__ import annotations

__all__ = ["DJANGO", "SQLA"]

#: Django test id -> (class, reason)
DJANGO: dict[str, tuple[str, str]] = {}

#: SQLAlchemy test node id -> (class, reason)
SQLA: dict[str, tuple[str, str]] = {}
