"""The demo's bookmarks app: users keep bookmarks, tagged and ranked by importance."""

from __future__ import annotations

__all__: list[str] = []
