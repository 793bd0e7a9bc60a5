"""Figures and dependency trees shown by ``cachedeps_stats``, the ``/cachedeps/`` page and the panel."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cachedeps.api import NO_VALUE
from cachedeps.recording import ENTRY_REF

__all__ = ["PrefixRow", "prefix_rows", "DependencyNode", "dependency_tree", "page_tree", "ENTRY_REF"]


@dataclass(frozen=True)
class PrefixRow:
    """Store figures for the keys sharing one prefix (the text before the first ``:``)."""

    prefix: str
    items: int
    bytes: int
    hits: int
    misses: int

    @property
    def hit_rate(self) -> float | None:
        """Return hits / (hits + misses), or None before any read."""
        total = self.hits + self.misses
        return self.hits / total if total else None


def prefix_rows(store: Any) -> list[PrefixRow]:
    """Return per-prefix figures when the store keeps them, else one row for the whole store."""
    per_prefix = getattr(store, "prefix_stats", None)
    if callable(per_prefix):
        rows = [
            PrefixRow(prefix, int(v.get("items", 0)), int(v.get("bytes", 0)),
                      int(v.get("hits", 0)), int(v.get("misses", 0)))
            for prefix, v in per_prefix().items()
        ]
        return sorted(rows, key=lambda r: (-(r.hits + r.misses), r.prefix))
    servers = getattr(store, "servers", None)
    if servers:
        rows = _served_prefix_rows(servers)
        if rows:
            return rows
    stats = store.stats()
    if stats and all(isinstance(v, dict) for v in stats.values()):
        # a pool: one stats dict per server, summed
        merged: dict[str, int] = {}
        for server_stats in stats.values():
            for name in ("curr_items", "bytes", "get_hits", "get_misses"):
                merged[name] = merged.get(name, 0) + int(server_stats.get(name, 0))
        stats = merged
    return [PrefixRow("*", int(stats.get("curr_items", 0)), int(stats.get("bytes", 0)),
                      int(stats.get("get_hits", 0)), int(stats.get("get_misses", 0)))]


def _served_prefix_rows(servers: Any) -> list[PrefixRow]:
    """Ask each server for ``stats prefixes`` (``cachedeps serve`` answers it); sum the figures.

    An empty list when no server answers with prefix figures (plain memcached).
    """
    import socket

    figures: dict[str, dict[str, int]] = {}
    for host, port in servers:
        try:
            with socket.create_connection((host, int(port)), timeout=2) as sock:
                sock.sendall(b"stats prefixes\r\n")
                data = b""
                while not data.endswith((b"END\r\n", b"ERROR\r\n")):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except OSError:
            continue
        for line in data.decode("utf-8", "replace").splitlines():
            parts = line.split(" ")
            if len(parts) != 3 or parts[0] != "STAT" or not parts[1].startswith("prefix:"):
                continue
            name, _, field_name = parts[1][len("prefix:"):].rpartition(":")
            if not parts[2].isdigit():
                continue
            row = figures.setdefault("" if name == "(none)" else name, {})
            row[field_name] = row.get(field_name, 0) + int(parts[2])
    rows = [PrefixRow(p, v.get("items", 0), v.get("bytes", 0), v.get("hits", 0), v.get("misses", 0))
            for p, v in figures.items()]
    return sorted(rows, key=lambda r: (-(r.hits + r.misses), r.prefix))


@dataclass
class DependencyNode:
    """A cached entry, the dependency keys it was stored with, and the entries it includes."""

    key: str
    cached: bool
    deps: list[str] = field(default_factory=list)
    children: list[DependencyNode] = field(default_factory=list)


def dependency_tree(engine: Any, key: str, depth: int = 4) -> DependencyNode:
    """Return the dependency tree of the derived entry ``key`` (read, never filled)."""
    with engine.recording() as rec:
        value = engine.get(key)
    node = DependencyNode(key, value is not NO_VALUE)
    refs = sorted(k[len(ENTRY_REF):] for k in rec.keys if k.startswith(ENTRY_REF))
    node.deps = sorted(k for k in rec.keys if not k.startswith(ENTRY_REF))
    if depth > 0:
        node.children = [dependency_tree(engine, ref, depth - 1) for ref in refs if ref != key]
    return node


def page_tree(engine: Any, path: str, host: str = "testserver", key_prefix: str | None = None,
              cookies: dict[str, str] | None = None) -> DependencyNode | None:
    """Return the dependency tree of the page cached by ``@cached_view`` for ``path`` (GET).

    ``None`` when nothing is known about that URL (never rendered, or dropped).
    """
    from django.test import RequestFactory

    from .decorators import _as_specs, _prefix, _spec_key, page_key, request_variant

    request = RequestFactory().get(path, HTTP_HOST=host)
    request.COOKIES.update(cookies or {})
    prefix = _prefix(key_prefix)
    found = engine.get(_spec_key(request, prefix))
    specs = _as_specs(found) if found is not NO_VALUE else None
    if not specs:
        return None
    keys = [page_key(request, prefix, v) for v in (request_variant(request, s) for s in specs) if v is not None]
    for key in keys:  # the page this request would be served (most specific rule first)
        if engine.get(key) is not NO_VALUE:
            return dependency_tree(engine, key)
    return dependency_tree(engine, keys[0]) if keys else None
