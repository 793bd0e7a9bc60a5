"""The change feed table and the opt-out-capable manager.

:class:`Change` is the feed (``cachedeps_change``): one row per dependency key a committed
write changed, ``tid`` increasing. It is written and read with plain SQL by
:class:`cachedeps.feed.SqlFeed`; the model exists so that ``migrate`` creates the table.
It is unmanaged (since migration 0002): ``manage.py flush`` and the test framework's
``reset_sequences`` leave the feed and its tid sequence alone, so tids never restart under
rows still in the table (a TRUNCATE of the data tables is itself a tracked write).
"""

from __future__ import annotations

from django.db import models

from .db.hints import cached, uncached

__all__ = ["Change", "CachedQuerySet", "CachedManager"]


class Change(models.Model):
    """One changed dependency key at position ``tid`` of the feed."""

    tid = models.BigAutoField(primary_key=True)
    key = models.CharField(max_length=255)

    class Meta:
        db_table = "cachedeps_change"
        verbose_name = "change"
        managed = False  # created by migration 0001; never flushed nor its sequence reset

    def __str__(self) -> str:
        return f"{self.tid}: {self.key}"


class CachedQuerySet(models.QuerySet):
    """A QuerySet with :meth:`nocache` and :meth:`cache`."""

    def nocache(self) -> CachedQuerySet:
        """Return a copy whose queries bypass the cache (reads go to the database)."""
        return uncached(self)

    def cache(self, timeout: float | None = None) -> CachedQuerySet:
        """Return a copy whose results are cached at most ``timeout`` seconds (0: no limit).

        ``None`` keeps the model's timeout (``CACHEDEPS``); either way the copy is cached
        again after :meth:`nocache`. Freshness never depends on it: writes invalidate at once.
        """
        return cached(self, timeout)


class CachedManager(models.Manager.from_queryset(CachedQuerySet)):  # type: ignore[misc]
    """A manager whose querysets have :meth:`CachedQuerySet.nocache` and :meth:`CachedQuerySet.cache`."""
