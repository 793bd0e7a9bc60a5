"""Figures and dependency trees shown by ``cachedeps_stats``, the ``/cachedeps/`` page and the panel."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cachedeps.api import NO_VALUE
from cachedeps.recording import ENTRY_REF

__all__ = [
    "PrefixRow", "prefix_rows", "DependencyNode", "dependency_tree", "page_tree", "ENTRY_REF",
    "EntryNode", "entry_tree", "PREFIX_NAMES", "page_entry_key",
]

#: what the store keys under each prefix hold, in words (see :class:`cachedeps.Cache`)
PREFIX_NAMES = {
    "d": ("Cached entries", "pages, fragments and query results, with their dependency keys"),
    "s": ("Rows", "the state of single rows, read by primary key"),
    "t": ("Dependency lists", "for each dependency key, the entries to drop when it changes"),
    "l": ("Fill leases", "who is filling a missing entry right now (stops a stampede)"),
    "cp": ("Checkpoints", "the two feed positions all processes share"),
    "feed": ("Change log in the store", "used only without a database change feed"),
    "": ("Django cache values", "values stored with cache.set() without a prefix"),
    "*": ("All keys", "this store does not report figures per kind of key"),
    "(other)": ("Other keys", "prefixes past the store's limit of distinct prefixes"),
}


@dataclass(frozen=True)
class PrefixRow:
    """Store figures for the keys sharing one prefix (the text before the first ``:``)."""

    prefix: str
    items: int
    bytes: int
    hits: int
    misses: int

    @property
    def name(self) -> str:
        """Return what the keys under this prefix hold, in words."""
        return PREFIX_NAMES.get(self.prefix, (f"Keys starting with {self.prefix}:", ""))[0]

    @property
    def meaning(self) -> str:
        """Return a one-line explanation of :attr:`name`."""
        return PREFIX_NAMES.get(self.prefix, ("", "keys of another application sharing the store"))[1]

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


def page_entry_key(engine: Any, path: str, host: str = "testserver", key_prefix: str | None = None,
                   cookies: dict[str, str] | None = None) -> str | None:
    """Return the entry key of the page ``@cached_view`` keeps for a GET of ``path``, or None.

    The copy this request would be served (most specific vary rule first), else the first
    rule's key; ``None`` when nothing is known about that URL. Counts nothing.
    """
    from django.test import RequestFactory

    from .decorators import _as_specs, _prefix, _spec_key, page_key, request_variant

    request = RequestFactory().get(path, HTTP_HOST=host)
    request.COOKIES.update(cookies or {})
    prefix = _prefix(key_prefix)
    with engine.recording():  # not counted into anything the caller records
        found = engine.get(_spec_key(request, prefix))
    specs = _as_specs(found) if found is not NO_VALUE else None
    if not specs:
        return None
    keys = [page_key(request, prefix, v) for v in (request_variant(request, s) for s in specs) if v is not None]
    for key in keys:
        if engine.inspect(key)[0] == "current":
            return key
    return keys[0] if keys else None


def page_tree(engine: Any, path: str, host: str = "testserver", key_prefix: str | None = None,
              cookies: dict[str, str] | None = None) -> DependencyNode | None:
    """Return the dependency tree of the page cached by ``@cached_view`` for ``path`` (GET).

    ``None`` when nothing is known about that URL (never rendered, or dropped).
    """
    key = page_entry_key(engine, path, host, key_prefix, cookies)
    return None if key is None else dependency_tree(engine, key)


@dataclass
class EntryNode:
    """One node of a page's tree: a page, a fragment or a query, and the keys it depends on.

    ``deps`` holds only the keys not already shown under a child (each as ``(key, words)``);
    ``dep_count`` counts all of them.
    """

    key: str
    kind: str  # page, fragment, query, entry
    label: str
    status: str  # current, outdated, missing, unreadable, unknown
    stamp: int | None = None
    size: int = 0
    sql: str | None = None
    deps: list[tuple[str, str]] = field(default_factory=list)
    dep_count: int = 0
    children: list[EntryNode] = field(default_factory=list)
    #: every dependency key of the entry (its own and its children's)
    all_deps: set[str] = field(default_factory=set, repr=False)


def _label(engine: Any, key: str) -> tuple[str, str]:
    from cachedeps.activity import kind_of

    kind = kind_of(key)
    if kind == "pages":
        page = engine.activity.page(key)
        return "page", (page.path if page is not None else "a cached page")
    if kind == "fragments":
        name = key[len("frag."):].rpartition(".")[0] or key
        return "fragment", f"fragment “{name}”"
    if kind == "queries":
        return "query", "query"
    return "entry", key


def entry_tree(engine: Any, key: str, depth: int = 5) -> EntryNode:
    """Return the tree of the entry ``key``: what it was built from, down to dependency keys.

    Read with :meth:`cachedeps.Cache.inspect` (counts nothing, fills nothing); the children
    and SQL are those this process recorded when it built the entries. A store that cannot
    be reached gives a node of status ``unknown``.
    """
    from cachedeps.activity import describe_key
    from cachedeps.errors import CachedepsError
    from cachedeps.keys import table_of

    kind, label = _label(engine, key)
    try:
        status, stamp, deps, size = engine.inspect(key)
    except CachedepsError:
        status, stamp, deps, size = "unknown", None, [], 0
    node = EntryNode(key, kind, label, status, stamp, size, engine.activity.sql(key))
    if kind == "page" and not deps:
        page = engine.activity.page(key)
        deps = list(page.deps) if page is not None else []
    covered: set[str] = set()
    if depth > 0:
        for child in engine.activity.children(key):
            sub = entry_tree(engine, child, depth - 1)
            node.children.append(sub)
            covered.update(_all_deps(sub))
    node.children.sort(key=lambda n: ({"fragment": 0, "query": 1}.get(n.kind, 2), n.label))
    own = [d for d in deps if d not in covered]
    tables = {table_of(d) for d in deps if not d.endswith(":*")}
    # a row's or value's "all rows" key is implied, not read: show it only on its own
    own = [d for d in own if not (d.endswith(":*") and table_of(d) in tables)]
    node.deps = [(d, describe_key(d)) for d in own]
    node.dep_count = len(deps)
    node.all_deps = set(deps)
    return node


def _all_deps(node: EntryNode) -> set[str]:
    found = set(node.all_deps)
    for child in node.children:
        found |= _all_deps(child)
    return found
