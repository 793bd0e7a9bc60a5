"""Write-time dependency links for the embedded store (reference 002's dependency trees).

A parent key (usually a dependency key such as ``book:42``) lists the keys that depend on
it. Both the number of parents and the length of each list are bounded; past a bound the
oldest links are dropped. Dropping a link only loses an early purge: cached entries are
validated against the change feed, so correctness never depends on these lists.

The graph is not thread-safe on its own; the store calls it under its lock.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterable

__all__ = ["DependencyGraph"]


class DependencyGraph:
    """Map parent keys to their dependents, bounded in both directions."""

    __slots__ = ("max_dependents", "max_parents", "_parents", "dropped_links", "dropped_parents")

    def __init__(self, max_dependents: int, max_parents: int) -> None:
        self.max_dependents = max_dependents
        self.max_parents = max_parents
        # parent -> [OrderedDict of children, deadline (0.0 = never)]
        self._parents: OrderedDict[str, list] = OrderedDict()
        self.dropped_links = 0
        self.dropped_parents = 0

    def __len__(self) -> int:
        return len(self._parents)

    def link(self, parent: str, children: Iterable[str], deadline: float) -> None:
        """Record that each of ``children`` depends on ``parent`` until ``deadline``."""
        parents = self._parents
        record = parents.get(parent)
        if record is None:
            record = [OrderedDict(), deadline]
            parents[parent] = record
            if len(parents) > self.max_parents:
                parents.popitem(last=False)
                self.dropped_parents += 1
        else:
            parents.move_to_end(parent)
            # A link lives as long as its longest-lived dependent.
            if record[1] and (not deadline or deadline > record[1]):
                record[1] = deadline
        kids = record[0]
        for child in children:
            if child in kids:
                kids.move_to_end(child)
            else:
                kids[child] = None
        excess = len(kids) - self.max_dependents
        if excess > 0:
            self.dropped_links += excess
            for _ in range(excess):
                kids.popitem(last=False)

    def take(self, parent: str, now: float) -> Iterable[str]:
        """Remove ``parent``'s list and return its live dependents (empty if expired)."""
        record = self._parents.pop(parent, None)
        if record is None or (record[1] and record[1] <= now):
            return ()
        return record[0]

    def dependents(self, parent: str) -> list[str]:
        """Return the dependents recorded for ``parent`` (oldest first)."""
        record = self._parents.get(parent)
        return list(record[0]) if record is not None else []

    def count_links(self) -> int:
        """Return the number of parent-to-dependent links held."""
        return sum(len(record[0]) for record in self._parents.values())

    def clear(self) -> None:
        """Forget every link."""
        self._parents.clear()
