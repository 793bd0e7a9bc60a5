"""``manage.py cachedeps_stats``: store figures per key prefix, hit rates, engine counters."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from cachedeps.errors import BackendError

from ..._introspect import prefix_rows

__all__ = ["Command", "engine_alias"]


def engine_alias(cache: str | None) -> str:
    """Return the CACHES alias the command reads (``--cache`` or ``CACHEDEPS["CACHE"]``)."""
    from ...conf import get_settings

    return cache or get_settings().cache


class Command(BaseCommand):
    """Print a table of the cache's items, bytes, hits, misses and hit rate per key prefix."""

    help = "Print per-prefix store figures and hit rates of the cachedeps cache, then engine counters."

    def add_arguments(self, parser: Any) -> None:  # noqa: D102 - Django's command API
        parser.add_argument("--cache", default=None, help="CACHES alias (default CACHEDEPS['CACHE'])")

    def handle(self, *args: Any, cache: str | None = None, **options: Any) -> None:  # noqa: D102
        from ...runtime import get_engine

        engine = get_engine(cache)
        store = engine.store
        try:
            rows = prefix_rows(store)
        except BackendError as exc:
            raise CommandError(f"cannot read figures from {store.name}: {exc}") from exc
        out = self.stdout
        out.write(f"store {store.name}")
        from cachedeps.config import EmbeddedConfig, parse_url
        from cachedeps.errors import ConfigurationError

        from django.conf import settings

        location = (settings.CACHES.get(engine_alias(cache)) or {}).get("LOCATION") or "embedded://"
        try:
            embedded = isinstance(parse_url(location), EmbeddedConfig)
        except ConfigurationError:
            embedded = False
        if embedded:
            out.write(self.style.WARNING(
                f"note: {location} is an embedded store: it lives inside each process, so these are "
                "this command's own figures, not the web server's (its figures are on the /cachedeps/ "
                "dashboard). To share one store and see its figures here, run `cachedeps serve` and "
                "set LOCATION to memcache://127.0.0.1:11211."))
        header = f"{'prefix':<24} {'items':>9} {'bytes':>12} {'hits':>10} {'misses':>10} {'hit rate':>9}"
        out.write(header)
        out.write("-" * len(header))
        for row in rows:
            rate = "-" if row.hit_rate is None else f"{row.hit_rate:.1%}"
            out.write(f"{row.prefix or '(none)':<24} {row.items:>9} {row.bytes:>12} {row.hits:>10} "
                      f"{row.misses:>10} {rate:>9}")
        stats = engine.stats()
        if stats:
            out.write("")
            out.write("this process:")
            for name, value in sorted(stats.items()):
                out.write(f"  {name:<22} {value}")
