"""``manage.py cachedeps_prune [--keep N]``: delete old rows of the change feed table."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

__all__ = ["Command"]


class Command(BaseCommand):
    """Keep the newest rows of the change feed, delete the rest.

    Run it now and then (cron, a periodic task): the feed grows by one row per dependency
    key of every committed write. A process whose last poll is older than what was pruned
    sees the prune marker and starts afresh: misses, never a stale read.
    """

    help = ("Delete all but the newest rows of the cachedeps change feed "
            "(default: keep CACHEDEPS['FEED_KEEP'] rows).")

    def add_arguments(self, parser: Any) -> None:  # noqa: D102 - Django's command API
        parser.add_argument("--keep", type=int, default=None,
                            help="rows to keep (default CACHEDEPS['FEED_KEEP'])")
        parser.add_argument("--database", default="default", help="database whose feed is pruned")

    def handle(self, *args: Any, keep: int | None, database: str, **options: Any) -> None:  # noqa: D102
        from django.db import connections, transaction

        from cachedeps.errors import FeedError

        from ...conf import get_settings
        from ...runtime import feed_ready, get_engine

        if keep is None:
            keep = get_settings().feed_keep
        if keep < 0:
            raise CommandError(f"--keep must be 0 or more rows, got {keep}")
        if database not in connections:
            raise CommandError(f"--database {database!r} is not in DATABASES ({', '.join(connections)})")
        if not feed_ready(database):
            raise CommandError(f"database {database!r} has no change feed table; run manage.py migrate")
        feed = get_engine(using=database).feed
        try:
            with transaction.atomic(using=database):
                upto = feed.prune(connections[database], keep)
        except FeedError as exc:
            raise CommandError(str(exc)) from exc
        if upto:
            self.stdout.write(f"pruned the change feed up to tid {upto}, keeping the newest {keep} row(s)")
        else:
            self.stdout.write(f"nothing to prune: the change feed holds {keep} row(s) or fewer")
