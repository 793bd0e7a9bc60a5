"""Django ORM reads with cachedeps: hits against the same reads on the database (SQLite).

Prints per-operation times for a get by primary key (state path), a filtered list (derived
entry) and a count, cached and uncached, and the cost of a tracked write.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any, Callable

__all__ = ["main"]


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django.settings")
    os.environ.setdefault("CACHEDEPS_TEST_SQLITE_FILE", os.path.join(tempfile.mkdtemp(), "bench.sqlite3"))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def _time(fn: Callable[[], Any], n: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main(quick: bool) -> None:
    """Run the benchmark and print a table (microseconds per operation)."""
    _setup()
    from django.db.models import F

    from django_cachedeps import nocache
    from django_cachedeps.runtime import unit_of_work
    from tests.django.testapp.models import Author, Book

    n = 300 if quick else 3000
    author = Author.objects.create(name="bench")
    Book.objects.bulk_create([Book(author=author, title=f"t{i}", isbn=f"bench{i}", pages=i) for i in range(50)])
    pk = Book.objects.filter(isbn="bench7").values_list("pk", flat=True).get()
    reads = {
        "get by pk": lambda: Book.objects.get(pk=pk),
        "filter list (50 rows)": lambda: list(Book.objects.filter(author_id=author.pk)),
        "count": lambda: Book.objects.filter(author_id=author.pk).count(),
    }
    print(f"{'operation':<28}{'db us':>10}{'cached us':>12}{'in request':>12}{'speedup':>9}")
    for name, fn in reads.items():
        def uncached(fn=fn):
            with nocache():
                fn()

        def in_request(fn=fn):
            with unit_of_work():
                for _ in range(10):
                    fn()

        db = _time(uncached, n)
        hit = _time(fn, n)
        req = _time(in_request, n // 10) / 10
        print(f"{name:<28}{db:>10.1f}{hit:>12.1f}{req:>12.1f}{db / req:>8.1f}x")
    write = _time(lambda: Book.objects.filter(pk=pk).update(pages=F("pages") + 1), max(n // 10, 30))
    print(f"{'tracked update by pk':<28}{write:>10.1f}")
    print("cached: polls the feed before every read; in request: one poll per 10 reads (per-read figure)")
