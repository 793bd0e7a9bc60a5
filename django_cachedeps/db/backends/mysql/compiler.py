"""MySQL's compilers (multi-table DELETE and UPDATE ... ORDER BY) with cachedeps mixed in."""

from __future__ import annotations

from django.db.backends.mysql import compiler as _mysql

from ...compiler import COMPILERS, build

__all__ = list(COMPILERS)

globals().update(build(_mysql, __name__))
