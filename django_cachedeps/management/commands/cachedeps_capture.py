"""``manage.py cachedeps_capture install|remove|status``: capture triggers on cached tables."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

__all__ = ["Command"]


class Command(BaseCommand):
    """Install, remove or inspect the triggers that write every write's keys to the feed.

    With capture installed, writes that bypass the ORM (``psql``, other programs, the
    database's own triggers and cascades) invalidate cached reads too. ``status`` lists each
    cached table: captured or not, row keys or table keys only (and why), columns without
    field-value keys, and drift (the model or the table changed since install: run
    ``install`` again). Set ``CACHEDEPS["CAPTURE"] = True`` so that ORM writes leave the keys
    of captured tables to the triggers.
    """

    help = "Install, remove or show the cachedeps capture triggers of the cached tables."

    def add_arguments(self, parser: Any) -> None:  # noqa: D102 - Django's command API
        parser.add_argument("action", choices=["install", "remove", "status"])
        parser.add_argument("--database", default="default", help="database alias (default: default)")

    def handle(self, *args: Any, action: str, database: str, **options: Any) -> None:  # noqa: D102
        from django.db import connections

        from cachedeps.errors import ConfigurationError

        from ... import capture
        from ...runtime import feed_ready

        if database not in connections:
            raise CommandError(f"--database {database!r} is not in DATABASES ({', '.join(connections)})")
        try:
            if action == "install":
                if not feed_ready(database):
                    raise CommandError(f"database {database!r} has no change feed table; run manage.py migrate")
                tables = capture.install(database)
                for st in capture.status(database):
                    self.stdout.write(st.describe())
                self.stdout.write(f"capture installed on {len(tables)} table(s) of database {database!r}")
            elif action == "remove":
                capture.remove(database)
                self.stdout.write(f"capture removed from database {database!r}")
            else:
                found = capture.status(database)
                for st in found:
                    self.stdout.write(st.describe())
                if any(st.drift for st in found):
                    self.stdout.write("drift found: run manage.py cachedeps_capture install")
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from exc
