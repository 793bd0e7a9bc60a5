"""``manage.py cachedeps_invalidate KEY...``: drop every entry depending on dependency keys."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

__all__ = ["Command"]


class Command(BaseCommand):
    """Announce a change of the given dependency keys through the change feed."""

    help = ("Invalidate dependency keys (as cachedeps.keys spells them: 'book:42', 'book', "
            "'book:*', 'book.author_id=7') in every process, through the change feed.")

    def add_arguments(self, parser: Any) -> None:  # noqa: D102 - Django's command API
        parser.add_argument("keys", nargs="+", metavar="KEY", help="dependency keys")
        parser.add_argument("--database", default="default", help="database whose feed records the change")
        parser.add_argument("--cache", default=None, help="CACHES alias (default CACHEDEPS['CACHE'])")

    def handle(self, *args: Any, keys: list[str], database: str, cache: str | None = None,
               **options: Any) -> None:  # noqa: D102
        from django.core.cache import caches

        from ...backend import CachedepsCache
        from ...conf import get_settings

        alias = cache or get_settings().cache
        backend = caches[alias]
        if not isinstance(backend, CachedepsCache):
            raise CommandError(f"CACHES[{alias!r}] is not a CachedepsCache; pass --cache with one that is")
        bad = [k for k in keys if not k or any(c.isspace() for c in k)]
        if bad:
            raise CommandError(f"dependency keys hold no whitespace: {bad!r}")
        tid = backend.invalidate(*keys, using=database)
        self.stdout.write(f"invalidated {len(keys)} key(s) at tid {tid}: {' '.join(keys)}")
