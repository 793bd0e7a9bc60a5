"""Management commands of the bookmarks app."""

from __future__ import annotations

__all__: list[str] = []
