"""``manage.py cachedeps_serve``: run ``cachedeps serve`` on the address of the project's cache.

Host and port come from the ``memcache://host:port`` LOCATION of the cachedeps cache (the
first server of a pool), so the project and the server agree; options override them.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

__all__ = ["Command", "serve_arguments"]


def serve_arguments(location: str, host: str | None, port: int | None,
                    max_memory: str | None) -> list[str]:
    """Return the ``cachedeps serve`` arguments for a cache LOCATION and overrides.

    Raises:
        CommandError: the LOCATION is not a ``memcache://`` URL and no port was given.
    """
    from cachedeps.config import parse_url
    from cachedeps.errors import ConfigurationError

    try:
        config = parse_url(location)
    except ConfigurationError as exc:
        raise CommandError(f"cache LOCATION {location!r} is not a store URL: {exc}") from exc
    servers = getattr(config, "servers", None)
    if servers:
        default_host, default_port = servers[0]
    elif port is None:
        raise CommandError(
            f"cache LOCATION {location!r} is an in-process store; point it at the server "
            "(LOCATION 'memcache://127.0.0.1:11211') or pass --port")
    else:
        default_host, default_port = "127.0.0.1", port
    argv = ["serve", "--host", host or default_host, "--port", str(port or default_port)]
    if max_memory:
        argv += ["--max-memory", max_memory]
    return argv


class Command(BaseCommand):
    """Serve the project's cache with ``cachedeps serve`` (a memcache-protocol server)."""

    help = "Run `cachedeps serve` on the host and port of the cachedeps cache's LOCATION."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: Any) -> None:  # noqa: D102 - Django's command API
        parser.add_argument("--cache", default=None, help="CACHES alias (default CACHEDEPS['CACHE'])")
        parser.add_argument("--host", default=None)
        parser.add_argument("--port", type=int, default=None)
        parser.add_argument("--max-memory", default=None, help="e.g. 64MB")
        parser.add_argument("--print-args", action="store_true", help="print the command line and exit")

    def handle(self, *args: Any, cache: str | None = None, host: str | None = None,
               port: int | None = None, max_memory: str | None = None, print_args: bool = False,
               **options: Any) -> None:  # noqa: D102
        from django.conf import settings

        from ...conf import get_settings

        alias = cache or get_settings().cache
        try:
            location = settings.CACHES[alias]["LOCATION"]
        except KeyError as exc:
            raise CommandError(f"CACHES[{alias!r}] has no LOCATION; set a memcache:// URL") from exc
        argv = serve_arguments(location, host, port, max_memory)
        if print_args:
            self.stdout.write("cachedeps " + " ".join(argv))
            return
        try:
            from cachedeps.cli import main
        except ImportError as exc:
            raise CommandError("cachedeps.cli is not available; install cachedeps[server]") from exc
        sys.exit(main(argv))
