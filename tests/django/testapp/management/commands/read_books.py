"""``manage.py read_books PK... --reads N``: N cached reads; prints their cost as JSON."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Read books through the cache; print the titles, feed polls and queries (JSON)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("pks", nargs="+", type=int)
        parser.add_argument("--reads", type=int, default=10)

    def handle(self, *args: Any, **options: Any) -> str:
        from tests.django.testapp.units_probe import read_books

        return json.dumps(read_books(options["pks"], options["reads"]))
