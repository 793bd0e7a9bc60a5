"""Template tags of django_cachedeps: ``{% load cachedeps %}``."""

from __future__ import annotations

__all__: list[str] = []
