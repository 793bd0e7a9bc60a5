"""Django: the bookmarks demo under a read-heavy load, without a cache, with Django's
``cache_page`` and with cachedeps.

Each configuration runs in its own process on a copy of one seeded SQLite database, through
Django's test client (in process, deterministic): 95% page reads (home, users' pages by date
and importance, tag pages, RSS feeds, skewed towards popular pages), 5% writes (a
bookmark's title and importance changed through the ORM). Every response is compared with
a fresh render of the same page with caching off; a difference is a stale response.
Printed: requests/s (reads only), database queries per request, hit rate (requests that ran
no query besides the feed poll), stale responses.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "testproject"
MODES = ("none", "cache_page", "cachedeps")


def _paths(rng: random.Random, users: list[str], tags: list[str]) -> list[str]:
    pages = ["/"]
    for user in users:
        for order in ("date", "importance"):
            for page in (1, 2, 3):
                pages.append(f"/u/{user}/?order={order}&page={page}")
        pages.append(f"/u/{user}/feed/")
    pages += [f"/t/{tag}/" for tag in tags]
    rng.shuffle(pages)  # popularity is not tied to the kind of page
    return pages


def _run_mode(mode: str, db: str, requests: int, seed: int) -> dict:
    """Run the load in this process (called in a child process per mode)."""
    sys.path[:0] = [str(PROJECT), str(ROOT)]
    os.environ["DJANGO_SETTINGS_MODULE"] = "testproject.settings"
    os.environ["DEMO_DB"] = db
    os.environ["DEMO_CACHE_MODE"] = mode
    os.environ["DJANGO_DEBUG"] = "0"
    import django

    django.setup()
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.signed_cookies import SessionStore
    from django.db import connection
    from django.test import Client, RequestFactory
    from django.test.utils import CaptureQueriesContext
    from django.urls import resolve

    from bookmarks.models import Bookmark, Tag
    from django_cachedeps import nocache

    rng = random.Random(seed)
    users = ["demo", "alice", "bob", "carol", "dave"]
    tags = list(Tag.objects.order_by("slug").values_list("slug", flat=True))[:20]
    paths = _paths(rng, users, tags)
    weights = [1.0 / (i + 1) ** 0.8 for i in range(len(paths))]
    ids = list(Bookmark.objects.values_list("pk", flat=True))
    client = Client()
    factory = RequestFactory()

    def fresh(path: str) -> bytes:
        request = factory.get(path)
        request.user = AnonymousUser()
        request.session = SessionStore()
        match = resolve(request.path_info)
        view = getattr(match.func, "__wrapped__", match.func)
        with nocache():
            response = view(request, *match.args, **match.kwargs)
            if hasattr(response, "render"):
                response.render()
        return response.content

    for path in paths:  # warm-up: every page once
        client.get(path)
    served = queries = hits = stale = writes = 0
    elapsed = 0.0
    for i in range(requests):
        if rng.random() < 0.05:
            bm = Bookmark.objects.get(pk=rng.choice(ids))
            bm.title = f"{bm.title.split(' ~')[0]} ~{i}"
            bm.importance = rng.randint(1, 5)
            bm.save(update_fields=["title", "importance"])
            writes += 1
            continue
        path = rng.choices(paths, weights)[0]
        with CaptureQueriesContext(connection) as ctx:
            start = time.perf_counter()
            response = client.get(path)
            elapsed += time.perf_counter() - start
        real = [q for q in ctx.captured_queries if "cachedeps_change" not in q["sql"]]
        served += 1
        queries += len(ctx.captured_queries)
        hits += not real
        if response.content != fresh(path):
            stale += 1
    return {"mode": mode, "requests": served, "writes": writes, "rps": served / elapsed,
            "queries": queries / served, "hit_rate": hits / served, "stale": stale}


def _child(mode: str, db: str, requests: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c",
         "import json, sys; from benchmarks.bench_django import _run_mode; "
         f"print('RESULT ' + json.dumps(_run_mode({mode!r}, {db!r}, {requests}, 7)))"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=600)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"bench_django {mode} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")


def main(quick: bool) -> None:
    """Seed a database, run the load in each configuration, print the figures and ratios."""
    requests = 300 if quick else 4000
    with tempfile.TemporaryDirectory(prefix="bench_django_") as tmp:
        seeded = os.path.join(tmp, "seed.sqlite3")
        env = {**os.environ, "DEMO_DB": seeded, "DJANGO_DEBUG": "0"}
        manage = [sys.executable, str(PROJECT / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, check=True, cwd=ROOT)
        subprocess.run([*manage, "seed_bookmarks"], env=env, check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        results = []
        for mode in MODES:
            db = os.path.join(tmp, f"{mode}.sqlite3")
            shutil.copy(seeded, db)
            results.append(_child(mode, db, requests))
    base = results[0]["rps"]
    print(f"{requests} operations per configuration (95% page reads, 5% ORM writes), SQLite, "
          "embedded store")
    print(f"{'configuration':<12} {'req/s':>9} {'vs none':>8} {'queries/req':>12} {'hit rate':>9} "
          f"{'stale':>6}")
    for r in results:
        print(f"{r['mode']:<12} {r['rps']:>9.0f} {r['rps'] / base:>7.2f}x {r['queries']:>12.2f} "
              f"{r['hit_rate']:>9.1%} {r['stale']:>6}")
    cd = results[-1]
    print(f"cachedeps targets: >= 3x no cache ({cd['rps'] / base:.2f}x), hit rate >= 90% "
          f"({cd['hit_rate']:.1%}), stale = 0 ({cd['stale']})")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
