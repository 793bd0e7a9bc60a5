#!/usr/bin/env python
"""Run management commands of the cachedeps demo site (a bookmarks site)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__: list[str] = []


def main() -> None:
    """Run a management command with the demo's settings."""
    here = Path(__file__).resolve().parent
    sys.path[:0] = [str(here), str(here.parent)]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
