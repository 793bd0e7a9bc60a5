"""The database layer: backend wrappers, compilers, query analysis and raw-SQL tracking."""

from __future__ import annotations

__all__: list[str] = []
