"""Django: the bookmarks demo under a read-heavy load, without a cache, with Django's
``cache_page`` and with cachedeps.

One SQLite database is migrated and seeded once; each configuration runs in its own process
on a copy of it, through Django's test client (in process, deterministic): after a warm-up
request to every page (not counted, the same for every configuration), 95% page reads (home,
users' pages by date and importance, tag pages, RSS feeds, skewed towards popular pages) and
5% writes (a bookmark's title and importance changed through the ORM). Every cached response
is compared with a fresh render of the same page with caching off (renders are deterministic,
so a fresh render is reused until the next write); a difference is a stale response.

Printed: requests/s (reads only), database queries per request, hit rate (requests that ran
no query besides the feed poll), stale responses, and for cachedeps the misses not explained
by a write: a bookmark edit must drop its owner's pages, the pages of its tags and the home
page (which lists the newest bookmarks of everyone), and nothing else; and the best hit rate
any cache that is never stale could reach on the same load (a miss only where the page's
content changed since it was last served).
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


def _django(db: str, mode: str) -> None:
    sys.path[:0] = [str(PROJECT), str(ROOT)]
    os.environ["DJANGO_SETTINGS_MODULE"] = "testproject.settings"
    os.environ["DEMO_DB"] = db
    os.environ["DEMO_CACHE_MODE"] = mode
    os.environ["DJANGO_DEBUG"] = "0"
    import django

    django.setup()


def _seed(db: str) -> None:
    """Migrate and seed ``db`` (in a child process), without syncing to disk: it is copied after."""
    _django(db, "none")
    from django.core.management import call_command
    from django.db.backends.signals import connection_created

    def unsynced(sender: object, connection: object, **kwargs: object) -> None:
        with connection.cursor() as cursor:  # type: ignore[attr-defined]
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.execute("PRAGMA journal_mode=MEMORY")

    connection_created.connect(unsynced)
    call_command("migrate", interactive=False, verbosity=0)
    call_command("seed_bookmarks", stdout=io.StringIO())


def _run_mode(mode: str, db: str, requests: int, seed: int) -> dict:
    """Run the load in this process (called in a child process per mode)."""
    _django(db, mode)
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.signed_cookies import SessionStore
    from django.db import connection
    from django.test import Client, RequestFactory
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
    fresh_renders: dict[str, bytes] = {}  # valid until the next write

    def fresh(path: str) -> bytes:
        if path in fresh_renders:
            return fresh_renders[path]
        request = factory.get(path)
        request.user = AnonymousUser()
        request.session = SessionStore()
        match = resolve(request.path_info)
        view = getattr(match.func, "__wrapped__", match.func)
        with nocache():
            response = view(request, *match.args, **match.kwargs)
            if hasattr(response, "render"):
                response.render()
        fresh_renders[path] = response.content
        return response.content

    def dropped_by(bookmark: Bookmark) -> set[str]:
        with nocache():
            owner = bookmark.owner.get_username()
            slugs = {t.slug for t in bookmark.tags.all()}
        return {p for p in paths if p == "/" or p.startswith(f"/u/{owner}/")
                or (p.startswith("/t/") and p.split("/")[2] in slugs)}

    counted = {"all": 0, "data": 0}

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        counted["all"] += 1
        counted["data"] += "cachedeps_change" not in sql
        return execute(sql, params, many, context)

    last: dict[str, bytes] = {}  # each page's content when last served
    for path in paths:  # warm-up: every page once, not counted
        last[path] = client.get(path).content
    served = queries = hits = stale = writes = unexplained = changed = 0
    due: set[str] = set()  # pages a write since their last request should have dropped
    elapsed = 0.0
    for i in range(requests):
        if rng.random() < 0.05:
            bm = Bookmark.objects.get(pk=rng.choice(ids))
            bm.title = f"{bm.title.split(' ~')[0]} ~{i}"
            bm.importance = rng.randint(1, 5)
            bm.save(update_fields=["title", "importance"])
            writes += 1
            fresh_renders.clear()
            due |= dropped_by(bm)
            continue
        path = rng.choices(paths, weights)[0]
        counted["all"] = counted["data"] = 0
        with connection.execute_wrapper(count):
            start = time.perf_counter()
            response = client.get(path)
            elapsed += time.perf_counter() - start
        served += 1
        queries += counted["all"]
        hits += not counted["data"]
        unexplained += bool(counted["data"]) and path not in due
        due.discard(path)
        if mode != "none" and response.content != fresh(path):
            stale += 1
        changed += response.content != last[path]
        last[path] = response.content
    engine_stats: dict = {}
    if mode == "cachedeps":
        from django_cachedeps.runtime import get_engine

        engine_stats = get_engine().stats()
    return {"mode": mode, "requests": served, "writes": writes, "rps": served / elapsed,
            "queries": queries / served, "hit_rate": hits / served, "stale": stale,
            "unexplained": unexplained, "pages": len(paths), "best": 1 - changed / served,
            "shifts": engine_stats.get("checkpoint_shifts", 0), "resets": engine_stats.get("resets", 0)}


def _child(call: str, timeout: float = 600) -> dict | None:
    out = subprocess.run(
        [sys.executable, "-c", f"import json; from benchmarks import bench_django as b; "
                               f"print('RESULT ' + json.dumps({call}))"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=timeout)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"bench_django {call} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")


def main(quick: bool) -> None:
    """Seed a database, run the load in each configuration, print the figures and ratios."""
    requests = 300 if quick else 3000
    with tempfile.TemporaryDirectory(prefix="bench_django_") as tmp:
        seeded = os.path.join(tmp, "seed.sqlite3")
        _child(f"b._seed({seeded!r})")
        results = []
        for mode in MODES:
            db = os.path.join(tmp, f"{mode}.sqlite3")
            shutil.copy(seeded, db)
            # Without a cache every request costs the same: fewer suffice for its rate.
            n = requests // 3 if mode == "none" else requests
            results.append(_child(f"b._run_mode({mode!r}, {db!r}, {n}, 7)"))
    base = results[0]["rps"]
    cd = results[-1]
    print(f"{requests} operations per cached configuration ({cd['requests']} page reads, {cd['writes']} "
          f"ORM writes; a third as many without a cache) after a warm-up request to each of "
          f"{cd['pages']} pages; SQLite, embedded store")
    print(f"{'configuration':<12} {'req/s':>9} {'vs none':>8} {'queries/req':>12} {'hit rate':>9} "
          f"{'stale':>6}")
    for r in results:
        checked = "-" if r["mode"] == "none" else str(r["stale"])
        print(f"{r['mode']:<12} {r['rps']:>9.0f} {r['rps'] / base:>7.2f}x {r['queries']:>12.2f} "
              f"{r['hit_rate']:>9.1%} {checked:>6}")
    print(f"cachedeps misses not caused by a write to the page's data: {cd['unexplained']} "
          f"(checkpoint shifts: {cd['shifts']}, delta-map resets: {cd['resets']})")
    print(f"best possible hit rate of a cache never stale (a miss only where the page's content "
          f"changed since it was last served): {cd['best']:.1%}")
    print(f"cachedeps targets: >= 3x no cache ({cd['rps'] / base:.2f}x), hit rate >= 90% "
          f"({cd['hit_rate']:.1%}), stale = 0 ({cd['stale']})")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
