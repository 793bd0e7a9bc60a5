"""Write-time dependency trees: delete every dependent of a changed key at once (reference 002).

When a derived entry is stored, its store key is linked under a *node* for each of its
dependency keys (``t:<ns><depkey>``) and under each cached entry it was built from (a view
under its fragments, a fragment under its queries). When keys change,
:meth:`DependencyTrees.purge` deletes their dependents, recursively, which frees memory at
once and spares readers a stale hit.

Two implementations behind one class:

- *native*, when the store is a :class:`~cachedeps.api.DependencyStore` (the embedded store,
  ``cachedeps serve``): ``store.link`` and ``store.invalidate``, atomic in the store. An entry
  built from another is linked under that entry's own store key, so the store's recursion
  reaches it.
- *emulated* on stock memcached: a node is an item holding the space-separated store keys of
  its dependents, grown with ``append`` (``add`` when missing). A purge reads the nodes in
  one ``get_many``, deletes them and their dependents (and the dependents' leases), then
  follows the nodes of the deleted entries, level by level, to a bounded depth.

A fill lease (:mod:`cachedeps.leases`) is linked like an entry, under the nodes of the
dependency keys known before its computation (and, natively, under its entry's key), so a
purge voids the leases of the entries it deletes and of fills still running.

Trees are an optimisation, never the source of correctness: every read is validated against
the change feed, on every dependency key the entry holds (an entry built from other entries
holds their keys too: :meth:`cachedeps.Cache.set` copies them in). So an evicted node, a link lost in a race with a purge, or a list dropped
because it grew past its bound costs memory or a stale-but-rejected hit, never a stale read.
"""

from __future__ import annotations

import random
from typing import Any, Iterable

from .api import DependencyStore
from .keys import safe_key

__all__ = ["DependencyTrees"]

_MAX_DEPTH = 4
_MAX_NODES = 2_000
# Emulated links are one pipelined round trip on memcached (one per link on a store without
# append_many): an entry is linked under at most this many parents (entries it was built
# from first, then its dependency keys in order).
# An unlinked dependency only delays freeing the entry's memory (LRU or its timeout does
# it); validity always comes from the change feed.
MAX_EMULATED_LINKS = 24


class DependencyTrees:
    """Link derived entries under their dependencies and purge them when those change.

    Args:
        store: the :class:`~cachedeps.api.Store`.
        namespace: prefix of every store key.
        max_node_bytes: an emulated node longer than this is dropped (its entries stay
            cached and are validated by the feed; only the early purge is lost).
    """

    def __init__(
        self,
        store: Any,
        namespace: str = "",
        max_node_bytes: int = 32_768,
    ) -> None:
        self.store = store
        self.namespace = namespace
        self.native = isinstance(store, DependencyStore)
        self.max_node_bytes = max_node_bytes
        self._entry_prefix = "d:" + namespace
        self._node_prefix = "t:" + namespace
        self._ref_prefix = "t:@" + namespace
        self._lease_prefix = "l:" + namespace

    def node(self, dep: str) -> str:
        """Return the store key of the node for dependency key ``dep``."""
        return safe_key(self._node_prefix, dep)

    def ref_node(self, entry_key: str) -> str:
        """Return the node listing entries built from the entry stored at ``entry_key``."""
        if self.native:
            return entry_key
        return safe_key(self._ref_prefix, entry_key[len(self._entry_prefix) :])

    def lease_key(self, entry_key: str) -> str:
        """Return the lease key of the entry stored at ``entry_key``."""
        return self._lease_prefix + entry_key[len(self._entry_prefix) :]

    def link(self, entry_key: str, deps: Iterable[str], sources: Iterable[str] = (), expire: float = 0) -> None:
        """Link ``entry_key`` under each dependency key and each source entry's store key.

        Raises:
            BackendError: the store failed (the caller treats it as a no-op).
        """
        parents = [self.ref_node(s) for s in sources if s != entry_key]
        parents.extend(self.node(d) for d in deps)
        if self.native:
            link_many = getattr(self.store, "link_many", None)
            if link_many is not None:  # one round trip for every parent (Redis)
                link_many(parents, (entry_key,), expire)
                return
            for parent in parents:
                self.store.link(parent, (entry_key,), expire)
            return
        parents = list(dict.fromkeys(parents))[:MAX_EMULATED_LINKS]
        piece = b" " + entry_key.encode("utf-8")
        append_many = getattr(self.store, "append_many", None) or self._append_each
        add_many = getattr(self.store, "add_many", None) or self._add_each
        # memcached: every append in one round trip per server, then the adds of new nodes
        missing = append_many(dict.fromkeys(parents, piece))
        if missing:
            taken = add_many(dict.fromkeys(missing, piece), expire)
            if taken:  # another writer created the node in between
                append_many(dict.fromkeys(taken, piece))
        absent = set(missing)
        sampled = [p for p in parents if p not in absent and random.random() < 1 / 32]
        if sampled:
            for parent, raw in self.store.get_many(sampled).items():
                if len(raw) > self.max_node_bytes:
                    self.store.delete(parent)

    def _append_each(self, mapping: dict[str, bytes]) -> list[str]:
        """``append_many`` for a store without it: one ``append`` per key."""
        return [key for key, value in mapping.items() if not self.store.append(key, value)]

    def _add_each(self, mapping: dict[str, bytes], expire: float) -> list[str]:
        """``add_many`` for a store without it: one ``add`` per key."""
        return [key for key, value in mapping.items() if not self.store.add(key, value, expire)]

    def link_lease(self, entry_key: str, lease_key: str, deps: Iterable[str], expire: float) -> None:
        """Link a fill lease so that a purge of its entry or of ``deps`` voids it.

        The lease goes under each dependency node known before the computation and, with
        native trees, under the entry's own key (emulated purges derive lease keys from the
        entries they delete).

        Raises:
            BackendError: the store failed (the caller treats it as a no-op).
        """
        if self.native:
            self.store.link(entry_key, (lease_key,), expire)
            self.link(lease_key, deps, (), expire)
        else:
            # An emulated node lives as long as the item that holds it: never shorten it to
            # a lease's life, the entry filled next is linked in the same node.
            self.link(lease_key, deps, (), 0)

    def purge(self, deps: Iterable[str]) -> int:
        """Delete every entry depending on ``deps``, recursively; return how many keys went.

        Raises:
            BackendError: the store failed (the caller logs it; the feed keeps reads correct).
        """
        nodes = list(dict.fromkeys(self.node(d) for d in deps))
        if not nodes:
            return 0
        if self.native:
            return int(self.store.invalidate(nodes))
        deleted = 0
        seen: set[str] = set()
        for _ in range(_MAX_DEPTH):
            nodes = [n for n in nodes if n not in seen]
            if not nodes or len(seen) > _MAX_NODES:
                break
            seen.update(nodes)
            found = self.store.get_many(nodes)
            if not found:
                break
            entries: list[str] = []
            for raw in found.values():
                entries.extend(k.decode("utf-8") for k in raw.split())
            entries = list(dict.fromkeys(entries))
            doomed = list(found)
            doomed.extend(entries)
            doomed.extend(self.lease_key(e) for e in entries if e.startswith(self._entry_prefix))
            self.store.delete_many(doomed)
            deleted += len(entries)
            nodes = [self.ref_node(e) for e in entries if e.startswith(self._entry_prefix)]
        return deleted
