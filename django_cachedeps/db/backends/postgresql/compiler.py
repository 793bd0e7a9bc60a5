"""PostgreSQL's compilers (UNNEST bulk inserts, ...) with cachedeps mixed in."""

from __future__ import annotations

from django.db.backends.postgresql import compiler as _pg

from ...compiler import COMPILERS, build

__all__ = list(COMPILERS)

globals().update(build(_pg, __name__))
