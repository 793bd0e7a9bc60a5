"""Django ORM reads with cachedeps: hits against the same reads on the database, on SQLite
(a local file) and on PostgreSQL (127.0.0.1, a private database created for the run).

Prints per-operation times for a get by primary key (state path), a filtered list (derived
entry) and a count, cached and uncached, and the cost of a tracked write. Each database runs
in its own process (Django's settings are per process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
PG_DSN = os.environ.get("CACHEDEPS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
PG_BENCH_DB = "cachedeps_bench_django_orm"
READS = ("get by pk", "filter list (50 rows)", "count")


def _time(fn: Callable[[], Any], n: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def _measure(n: int) -> dict[str, Any]:
    """Migrate, seed and time the reads in this process (a child of :func:`main`)."""
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django.db.models import F

    from django_cachedeps import nocache
    from django_cachedeps.runtime import unit_of_work
    from tests.django.testapp.models import Author, Book

    author = Author.objects.create(name="bench")
    Book.objects.bulk_create([Book(author=author, title=f"t{i}", isbn=f"bench{i}", pages=i) for i in range(50)])
    pk = Book.objects.filter(isbn="bench7").values_list("pk", flat=True).get()
    reads = dict(zip(READS, (
        lambda: Book.objects.get(pk=pk),
        lambda: list(Book.objects.filter(author_id=author.pk)),
        lambda: Book.objects.filter(author_id=author.pk).count(),
    )))
    out: dict[str, Any] = {}
    for name, fn in reads.items():
        def uncached(fn: Callable[[], Any] = fn) -> None:
            with nocache():
                fn()

        def in_request(fn: Callable[[], Any] = fn) -> None:
            with unit_of_work():
                for _ in range(10):
                    fn()

        out[name] = {"db": _time(uncached, n), "hit": _time(fn, n), "req": _time(in_request, n // 10) / 10}
    out["write"] = _time(lambda: Book.objects.filter(pk=pk).update(pages=F("pages") + 1), max(n // 10, 30))
    return out


def _child(n: int, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", "import json; from benchmarks.bench_django_orm import _measure; "
                               f"print('RESULT ' + json.dumps(_measure({n})))"],
        cwd=ROOT, env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.django.settings", **env},
        capture_output=True, text=True, check=False, timeout=600)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"bench_django_orm failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")


def _postgres(n: int) -> dict[str, Any] | None:
    """Run the reads on a private PostgreSQL database; None when PostgreSQL is not reachable."""
    try:
        import psycopg

        admin = psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3)
    except Exception as exc:  # no server, no driver: the column is left out
        print(f"(PostgreSQL left out: {exc})")
        return None
    with admin:
        admin.execute(f"DROP DATABASE IF EXISTS {PG_BENCH_DB}")
        admin.execute(f"CREATE DATABASE {PG_BENCH_DB}")
        try:
            return _child(n, {"CACHEDEPS_TEST_DB": "postgresql", "CACHEDEPS_TEST_PG_DB": PG_BENCH_DB})
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {PG_BENCH_DB} WITH (FORCE)")


def main(quick: bool) -> None:
    """Run the benchmark on SQLite and PostgreSQL and print a table (microseconds per operation)."""
    n = 300 if quick else 3000
    with tempfile.TemporaryDirectory(prefix="bench_django_orm_") as tmp:
        results = {"SQLite": _child(n, {"CACHEDEPS_TEST_DB": "sqlite",
                                        "CACHEDEPS_TEST_SQLITE_FILE": os.path.join(tmp, "bench.sqlite3")})}
    pg = _postgres(n)
    if pg is not None:
        results["PostgreSQL"] = pg
    for db, r in results.items():
        print(f"{db}: microseconds per operation")
        print(f"  {'operation':<26}{'db us':>10}{'cached us':>12}{'in request':>12}{'speedup':>9}")
        for name in READS:
            f = r[name]
            print(f"  {name:<26}{f['db']:>10.1f}{f['hit']:>12.1f}{f['req']:>12.1f}{f['db'] / f['req']:>8.1f}x")
        print(f"  {'tracked update by pk':<26}{r['write']:>10.1f}")
    print("cached: polls the feed before every read; in request: one poll per 10 reads (per-read figure)")
