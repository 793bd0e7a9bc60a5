"""Per key-prefix figures for the embedded store: items, bytes, hits, misses, evictions.

The prefix of a key is the text before its first ``:`` (``""`` for a key without one).
Each stored entry holds a reference to its prefix's counter record, so a hit costs one
increment and no string work; only misses and new keys look the prefix up. Item and byte
counts are not kept on the write path: they are counted over a snapshot when asked for.
"""

from __future__ import annotations

from typing import Mapping, Sequence

__all__ = ["PrefixTable", "OTHER"]

#: the prefix under which keys are counted once ``max_prefixes`` distinct prefixes are known
OTHER = "(other)"


class PrefixTable:
    """Hit, miss and eviction counters per key prefix; bounded in the number of prefixes."""

    __slots__ = ("_records", "max_prefixes")

    def __init__(self, max_prefixes: int = 1024) -> None:
        self.max_prefixes = max_prefixes
        # prefix -> [hits, misses, evictions]
        self._records: dict[str, list[int]] = {}

    def name_of(self, key: str) -> str:
        """Return the prefix ``key`` is counted under."""
        prefix = key.partition(":")[0] if ":" in key else ""
        if prefix in self._records or len(self._records) < self.max_prefixes:
            return prefix
        return OTHER

    def record(self, key: str) -> list[int]:
        """Return the mutable ``[hits, misses, evictions]`` record for ``key``'s prefix."""
        prefix = self.name_of(key)
        rec = self._records.get(prefix)
        if rec is None:
            rec = self._records[prefix] = [0, 0, 0]
        return rec

    def snapshot(self, usage: Mapping[str, Sequence[int]]) -> dict[str, dict[str, int]]:
        """Return ``{prefix: {items, bytes, hits, misses, evictions}}``.

        ``usage`` maps prefixes to ``(items, bytes)`` counted by the caller.
        """
        out = {}
        for prefix in sorted(set(self._records) | set(usage)):
            hits, misses, evictions = self._records.get(prefix, (0, 0, 0))
            items, size = usage.get(prefix, (0, 0))
            out[prefix] = {"items": items, "bytes": size, "hits": hits, "misses": misses,
                           "evictions": evictions}
        return out
