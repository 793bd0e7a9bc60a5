"""Management commands of django_cachedeps."""

from __future__ import annotations

__all__: list[str] = []
