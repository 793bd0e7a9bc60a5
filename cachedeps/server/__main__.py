"""``python -m cachedeps.server``: the same as ``cachedeps serve``."""

from __future__ import annotations

import sys

from ..cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
