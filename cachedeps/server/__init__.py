"""``cachedeps serve``: the embedded store on the memcache text, meta and binary protocols.

See docs/server.md. :func:`cachedeps.server.server.serve` runs it; the parser
(:mod:`cachedeps.server.protocol`) does no I/O and is usable on its own.
"""

from __future__ import annotations

__all__: list[str] = []
