"""Scale curves of the deploy benchmark, printed after the comparison.

- workers: the site with cachedeps (pages and fragments, memcached) under 1, 2, 4, 8 gunicorn
  workers: requests/s, feed polls per read and the polls' share of database time;
- purge: a write that invalidates 10, 1,000 and 100,000 dependent entries of one key, on
  each store: how long the writer waits for the purge, and that every entry is gone for
  readers afterwards;
- feed: the change-feed table after 10^6 written keys with ``cachedeps_prune`` between
  batches, against the same rows unpruned: its size and the cost of one poll (SQL on
  PostgreSQL directly, the statement the engine runs).
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

__all__ = ["workers_curve", "purge_curve", "feed_curve"]


def workers_curve(run: Callable[[str, int, float], dict[str, Any]], quick: bool) -> list[dict[str, Any]]:
    """Run cachedeps (memcached) and no cache with 1, 2, 4, 8 workers; print and return the points."""
    counts = (1, 2) if quick else (1, 2, 4, 8)
    duration = 4 if quick else 8
    points = []
    print(f"\nworkers curve ({duration}s each; connections = 2 x workers, at least 4)")
    print(f"{'workers':>8}{'none req/s':>12}{'cachedeps req/s':>17}{'ratio':>7}{'polls/read':>11}"
          f"{'poll % exec (pg)':>18}{'poll % exec+plan':>18}{'poll % app wall':>17}{'p99 ms':>8}")
    for n in counts:
        base = run("none", n, duration)
        cd = run("cachedeps-memcached", n, duration)
        point = {"workers": n, "none_rps": base["rps"], "rps": cd["rps"], "feed_q": cd["feed_q_per_read"],
                 "feed_share": cd["feed_share"], "p99": cd["p99"], "hit_rate": cd["hit_rate"],
                 "srv_poll_share": cd.get("srv_poll_share"), "srv_poll_share_plan": cd.get("srv_poll_share_plan")}
        points.append(point)
        srv = (f"{'-':>18}{'-':>18}" if cd.get("srv_poll_share") is None else
               f"{cd['srv_poll_share']:>18.1%}{cd['srv_poll_share_plan']:>18.1%}")
        print(f"{n:>8}{base['rps']:>12.0f}{cd['rps']:>17.0f}{cd['rps'] / base['rps']:>6.1f}x"
              f"{cd['feed_q_per_read']:>11.2f}{srv}{cd['feed_share']:>17.1%}"
              f"{cd['p99']:>8.1f}", flush=True)
    return points


def purge_curve(quick: bool) -> list[dict[str, Any]]:
    """Time the purge of one key's dependents on each store; print and return the points."""
    import cachedeps
    from cachedeps.api import NO_VALUE

    from benchmarks.deploy.run import Services

    sizes = (10, 1_000, 10_000) if quick else (10, 1_000, 100_000)
    points = []
    print(f"\npurge curve: one write invalidating N entries that depend on one key")
    print(f"{'store':<10}{'N':>8}{'fill s':>8}{'writer waits ms':>17}{'purged now':>12}{'readers see':>13}")
    with Services() as services:
        stores = {"embedded": "embedded://purge?max_memory=1GB",
                  "memcached": f"memcache://127.0.0.1:{services.memcached}",
                  "redis": f"redis://127.0.0.1:{services.redis}/0"}
        for name, url in stores.items():
            engine = cachedeps.Cache(url, namespace="purge")
            engine.poll()
            for n in sizes:
                hot = f"hot:{n}"
                start = time.perf_counter()
                for i in range(n):
                    engine.set(f"dep{n}:{i}", i, depends_on=[hot])
                fill = time.perf_counter() - start
                before = engine.stats().get("purges", 0)
                start = time.perf_counter()
                engine.invalidate(hot)
                waited = time.perf_counter() - start
                purged = engine.stats().get("purges", 0) - before
                step = max(1, n // 1000)
                left = sum(engine.get(f"dep{n}:{i}") is not NO_VALUE for i in range(0, n, step))
                seen = "all gone" if left == 0 else f"{left} LEFT"
                points.append({"store": name, "n": n, "fill": fill, "purge_ms": waited * 1e3, "purged": purged,
                               "left": left})
                print(f"{name:<10}{n:>8}{fill:>8.2f}{waited * 1e3:>17.2f}{purged:>12}{seen:>13}", flush=True)
    print("(purged now: entries deleted from the store during the write; the rest of a key's dependents past "
          "the store's max_dependents are refused by readers' validation and evicted later)")
    return points


def feed_curve(dsn: Callable[[str], str], admin: Callable[[], Any], quick: bool) -> dict[str, Any]:
    """Write 10^6 feed rows in batches, pruning between them (and not); print sizes and poll costs."""
    import psycopg

    from cachedeps.feed import SqlFeed

    total = 100_000 if quick else 1_000_000
    batch = total // 10
    keep = 100_000 if not quick else 10_000  # CACHEDEPS["FEED_KEEP"]'s default in the full run
    db = "bench_deploy_feed"
    out: dict[str, Any] = {"total": total, "keep": keep}
    print(f"\nfeed curve: {total:,} keys written in batches of {batch:,}")
    print(f"{'':<28}{'rows':>10}{'table+index':>13}{'poll us (median)':>18}{'poll, 10 behind':>17}")
    with admin() as a:
        a.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        a.execute(f'CREATE DATABASE "{db}"')
    try:
        for pruned in (False, True):
            feed = SqlFeed(dialect="postgresql")
            with psycopg.connect(dsn(db), autocommit=True) as conn:
                conn.execute("DROP TABLE IF EXISTS cachedeps_change")
                for stmt in feed.ddl():
                    conn.execute(stmt)
                for start in range(0, total, batch):
                    conn.execute("INSERT INTO cachedeps_change (key) SELECT 'bookmarks_bookmark:' || (i %% 1000) "
                                 "FROM generate_series(%s::bigint, %s::bigint) AS i", (start, start + batch - 1))
                    if pruned:  # cachedeps_prune after each batch, then (auto)vacuum
                        with conn.transaction():
                            feed.prune(conn, keep)
                        conn.execute("VACUUM cachedeps_change")
                conn.execute("VACUUM ANALYZE cachedeps_change")
                rows = conn.execute("SELECT count(*) FROM cachedeps_change").fetchone()[0]
                size = conn.execute("SELECT pg_total_relation_size('cachedeps_change')").fetchone()[0]
                head = feed.head(conn)
                feed.poll(conn, head)  # prepares the statement text
                timings = []
                for _ in range(300):
                    t = time.perf_counter()
                    feed.poll(conn, head)
                    timings.append(time.perf_counter() - t)
                behind = []
                for _ in range(300):
                    t = time.perf_counter()
                    feed.poll(conn, head - 10)
                    behind.append(time.perf_counter() - t)
            label = f"pruned to {keep:,} per batch" if pruned else "never pruned"
            out["pruned" if pruned else "unpruned"] = {"rows": rows, "bytes": size,
                                                       "poll_us": statistics.median(timings) * 1e6,
                                                       "poll_behind_us": statistics.median(behind) * 1e6}
            print(f"{label:<28}{rows:>10,}{size / 1e6:>11.1f}MB{statistics.median(timings) * 1e6:>18.0f}"
                  f"{statistics.median(behind) * 1e6:>17.0f}", flush=True)
    finally:
        with admin() as a:
            a.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    return out
