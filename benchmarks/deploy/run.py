"""Drive the deploy benchmark (run inside the benchmark's venv by ``benchmarks/bench_deploy.py``).

For each configuration in turn: a fresh copy of the seeded PostgreSQL database, a fresh
memcached and Redis on free loopback ports, the demo under gunicorn with N workers, a
warm-up request to every page (one per worker for the embedded store), then wrk with
``load.lua`` for a fixed time.
Afterwards every page read is checked against the data it had to show (``stale.py``) and
the figures are printed; then the scale curves (``curves.py``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import http.cookiejar
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.deploy import stale
from benchmarks.deploy.configs import CONFIGS, PEERS

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
#: the shared server: where the settings of the benchmark's own cluster are copied from, and
#: the server used instead of one with ``--shared-pg`` (no pg_stat_statements there)
SHARED_PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PG = SHARED_PG  # the server of the run: the benchmark's own cluster unless --shared-pg (see main)
#: whether PG has pg_stat_statements (the benchmark's own cluster)
PG_STATEMENTS = False
#: threads per gunicorn worker (more than 1: the gthread worker class; --threads)
THREADS = 1
USERS = {"demo": "demo-password", "alice": "alice-password", "bob": "bob-password",
         "carol": "carol-password", "dave": "dave-password"}
WRITE_SHARE = 0.05


def free_port() -> int:
    """Return a TCP port free on the loopback interface now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


class Services:
    """memcached and Redis on free loopback ports, started afresh for each configuration."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.memcached = free_port()
        self.redis = free_port()

    def __enter__(self) -> Services:
        for name in ("memcached", "redis-server"):
            if shutil.which(name) is None:
                raise RuntimeError(f"{name} is not installed (apt-get install memcached redis-server)")
        mc = subprocess.Popen(["memcached", "-l", "127.0.0.1", "-p", str(self.memcached), "-U", "0",
                               "-m", "1024", "-t", "2",
                               *(["-u", "root"] if os.geteuid() == 0 else [])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(mc)
        rd = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis), "--save", "",
                               "--appendonly", "no", "--protected-mode", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(rd)
        _wait_port(self.memcached, mc, "memcached")
        _wait_port(self.redis, rd, "redis-server")
        return self

    def __exit__(self, *exc: Any) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()

    def memcached_bytes(self) -> int:
        """Return the bytes memcached holds (its ``stats`` ``bytes``)."""
        with socket.create_connection(("127.0.0.1", self.memcached)) as s:
            s.sendall(b"stats\r\n")
            buf = b""
            while not buf.endswith(b"END\r\n"):
                buf += s.recv(65536)
        m = re.search(rb"STAT bytes (\d+)", buf)
        return int(m.group(1)) if m else 0

    def redis_bytes(self) -> int:
        """Return Redis's ``used_memory``."""
        out = subprocess.run(["redis-cli", "-p", str(self.redis), "info", "memory"], capture_output=True,
                             text=True, check=True).stdout
        m = re.search(r"used_memory:(\d+)", out)
        return int(m.group(1)) if m else 0


def admin() -> psycopg.Connection:
    """Return an autocommit connection to the server's maintenance database."""
    return psycopg.connect(PG, autocommit=True)


def _dsn(db: str) -> str:
    return PG.rsplit("/", 1)[0] + "/" + db


def _env(config: str, db: str, services: Services | None = None, **extra: str) -> dict[str, str]:
    url = urllib.parse.urlsplit(PG)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'testproject'}",
           "DJANGO_SETTINGS_MODULE": "benchmarks.deploy.settings", "BENCH_CONFIG": config, "BENCH_DB": db,
           "BENCH_PG_HOST": url.hostname or "127.0.0.1", "BENCH_PG_PORT": str(url.port or 5432)}
    if services is not None:
        env["BENCH_MEMCACHED"] = f"127.0.0.1:{services.memcached}"
        env["BENCH_REDIS"] = f"127.0.0.1:{services.redis}"
    env.update(extra)
    return env


def manage(config: str, db: str, *args: str) -> None:
    """Run ``manage.py ARGS`` of the demo in a configuration (without a store running)."""
    subprocess.run([sys.executable, str(ROOT / "testproject" / "manage.py"), *args],
                   env=_env(config, db), check=True, stdout=subprocess.DEVNULL)


def seed(db: str) -> None:
    """Create ``db`` and migrate and seed it (1,000 bookmarks of 5 users, 50 tags)."""
    with admin() as a:
        a.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        a.execute(f'CREATE DATABASE "{db}"')
    manage("none", db, "migrate", "--noinput")
    manage("none", db, "seed_bookmarks")


def load_seeded(db: str) -> tuple[dict[int, stale.Bookmark], dict[int, dict[str, Any]]]:
    """Return the seeded bookmarks for the checker, and what the edit form posts back (tags, text)."""
    with psycopg.connect(_dsn(db)) as c:
        rows = c.execute(
            "SELECT b.id, b.url, u.username, extract(epoch from b.created)::float8, b.title, b.importance, "
            "b.description, coalesce(array_agg(t.slug ORDER BY t.id) FILTER (WHERE t.id IS NOT NULL), '{}'), "
            "coalesce(array_agg(t.id ORDER BY t.id) FILTER (WHERE t.id IS NOT NULL), '{}') "
            "FROM bookmarks_bookmark b JOIN auth_user u ON u.id = b.owner_id "
            "LEFT JOIN bookmarks_bookmark_tags bt ON bt.bookmark_id = b.id "
            "LEFT JOIN bookmarks_tag t ON t.id = bt.tag_id GROUP BY b.id, u.username ORDER BY b.id").fetchall()
    seeded, form = {}, {}
    for bid, url, owner, created, title, imp, desc, slugs, tag_ids in rows:
        seeded[bid] = stale.Bookmark(bid, url, owner, created, frozenset(slugs), title, imp)
        form[bid] = {"desc": desc, "tags": list(tag_ids)}
    return seeded, form


def final_rows(db: str) -> dict[int, tuple[str, int]]:
    """Return every bookmark's title and importance now."""
    with psycopg.connect(_dsn(db)) as c:
        return {bid: (t, i) for bid, t, i in c.execute("SELECT id, title, importance FROM bookmarks_bookmark")}


def pages(seeded: dict[int, stale.Bookmark]) -> tuple[list[str], list[float]]:
    """Return the pages read (shuffled: popularity is not tied to the kind of page) and their weights."""
    rng = random.Random(7)
    out = ["/"]
    for user in USERS:
        for order in ("date", "importance"):
            for page in (1, 2, 3):
                out.append(f"/u/{user}/?order={order}&page={page}")
        out.append(f"/u/{user}/feed/")
    tags = sorted({t for b in seeded.values() for t in b.tags})[:20]
    out += [f"/t/{t}/" for t in tags]
    rng.shuffle(out)
    weights = [1.0 / (i + 1) ** 0.8 for i in range(len(out))]
    return out, weights


def _lua(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid Lua string literal for this text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{_lua(k)}] = {_lua(v)}" for k, v in value.items()) + "}"
    return "{" + ", ".join(_lua(v) for v in value) + "}"


class Site:
    """The demo under gunicorn in one configuration."""

    def __init__(self, config: str, db: str, services: Services, workers: int, stats_dir: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "benchmarks.deploy.wsgi:application", "--workers", str(workers),
             *(["--worker-class", "gthread", "--threads", str(THREADS)] if THREADS > 1 else []),
             "--bind", f"127.0.0.1:{self.port}", "--chdir", str(ROOT), "--config", str(HERE / "gunicorn_conf.py"),
             "--timeout", "120", "--graceful-timeout", "20", "--log-level", "warning", "--backlog", "512"],
            env=_env(config, db, services, BENCH_STATS_DIR=stats_dir), start_new_session=True)
        _wait_port(self.port, self.proc, f"gunicorn ({config})", timeout=60)

    def get(self, path: str) -> bytes:
        """GET ``path`` and return the body (raises on an HTTP error)."""
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            return r.read()

    def login(self, user: str, password: str) -> str:
        """Log in through the login form; return the Cookie header of that session."""
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        form = opener.open(self.url + "/accounts/login/", timeout=60).read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
        data = urllib.parse.urlencode({"username": user, "password": password, "csrfmiddlewaretoken": token}).encode()
        opener.open(urllib.request.Request(self.url + "/accounts/login/", data=data,
                                           headers={"Referer": self.url + "/accounts/login/"}), timeout=60).read()
        cookies = {c.name: c.value for c in jar}
        if "sessionid" not in cookies:
            raise RuntimeError(f"logging in as {user!r} failed: no session cookie")
        return "; ".join(f"{k}={cookies[k]}" for k in ("sessionid", "csrftoken") if k in cookies)

    def stop(self) -> None:
        """Stop gunicorn gracefully (workers write their figures on exit)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def pg_counters(db: str) -> dict[str, int]:
    """Return the database's transaction and row counters (``pg_stat_database``)."""
    with admin() as a:
        row = a.execute("SELECT xact_commit + xact_rollback, tup_returned, tup_fetched, "
                        "tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = %s",
                        (db,)).fetchone()
    return dict(zip(("xacts", "returned", "fetched", "written"), (int(v or 0) for v in row)))


def statements_reset() -> None:
    """Zero ``pg_stat_statements`` (the whole cluster's: the run's database is the only busy one)."""
    if PG_STATEMENTS:
        with admin() as a:
            a.execute("SELECT pg_stat_statements_reset()")


def is_poll(query: str) -> bool:
    """Return whether a statement's text is the cachedeps feed poll."""
    return "cachedeps_change" in query and "tid >=" in query and query.lstrip().upper().startswith("SELECT")


def statements(db: str) -> list[dict[str, Any]] | None:
    """Return ``pg_stat_statements``' rows of database ``db`` since the last reset (None without it)."""
    if not PG_STATEMENTS:
        return None
    with admin() as a:
        rows = a.execute(
            "SELECT s.query, s.calls, s.total_exec_time, s.total_plan_time, s.rows FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s ORDER BY s.calls DESC", (db,)).fetchall()
    return [{"query": q, "calls": int(c), "exec_ms": float(e), "plan_ms": float(p), "rows": int(r)}
            for q, c, e, p, r in rows]


def server_figures(stmts: list[dict[str, Any]] | None, requests: int) -> dict[str, Any]:
    """Return the database's own figures of a run: statements per request, time, the poll's share."""
    if stmts is None:
        return {"srv_q_per_req": None, "srv_exec_ms_per_req": None, "srv_poll_share": None,
                "srv_poll_share_plan": None, "srv_top": []}
    exec_ms = sum(s["exec_ms"] for s in stmts)
    plan_ms = sum(s["plan_ms"] for s in stmts)
    poll = [s for s in stmts if is_poll(s["query"])]
    poll_exec = sum(s["exec_ms"] for s in poll)
    poll_plan = sum(s["plan_ms"] for s in poll)
    n = max(requests, 1)
    top = [{"query": " ".join(s["query"].split())[:90], "per_req": s["calls"] / n,
            "mean_us": s["exec_ms"] * 1e3 / max(s["calls"], 1), "plan_us": s["plan_ms"] * 1e3 / max(s["calls"], 1),
            "share": s["exec_ms"] / exec_ms if exec_ms else 0.0} for s in stmts[:8]]
    return {"srv_q_per_req": sum(s["calls"] for s in stmts) / n, "srv_exec_ms_per_req": exec_ms / n,
            "srv_plan_ms_per_req": plan_ms / n,
            "srv_poll_share": poll_exec / exec_ms if exec_ms else 0.0,
            "srv_poll_share_plan": (poll_exec + poll_plan) / (exec_ms + plan_ms) if exec_ms + plan_ms else 0.0,
            "srv_top": top}


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run_config(config: str, *, seed_db: str, run_db: str, seeded: dict[int, stale.Bookmark],
               form: dict[int, dict[str, Any]], workers: int, duration: float, connections: int,
               check: bool = True) -> dict[str, Any]:
    """Run the load on one configuration and return its figures."""
    t_begin = time.monotonic()
    with admin() as a:
        a.execute(f'DROP DATABASE IF EXISTS "{run_db}" WITH (FORCE)')
        a.execute(f'CREATE DATABASE "{run_db}" TEMPLATE "{seed_db}"')
    tmp = tempfile.mkdtemp(prefix=f"bench_deploy_{config}_")
    try:
        with Services() as services:
            redis_base = services.redis_bytes()
            site = Site(config, run_db, services, workers, tmp)
            try:
                paths, weights = pages(seeded)
                # Warm-up, not counted: every page once (once per worker for a per-worker store),
                # and the logins, from as many threads as the site has workers.
                with concurrent.futures.ThreadPoolExecutor(max(2, workers * THREADS)) as pool:
                    logins = {u: pool.submit(site.login, u, p) for u, p in USERS.items()}
                    list(pool.map(site.get, [path for path in paths
                                             for _ in range(workers if config == "cachedeps-embedded" else 1)]))
                    cookies = {u: f.result() for u, f in logins.items()}
                writers: dict[int, list[dict[str, Any]]] = {}
                for i, b in enumerate(sorted(seeded.values(), key=lambda b: b.id)):
                    writers.setdefault(i % connections + 1, []).append(
                        {"id": b.id, "url": b.url, "base": b.title, "desc": form[b.id]["desc"],
                         "tags": form[b.id]["tags"], "cookie": cookies[b.owner]})
                cum, total = [], 0.0
                for w in weights:
                    total += w
                    cum.append(total)
                data = {"seed": 7, "logdir": tmp, "write_share": WRITE_SHARE, "paths": paths, "cum": cum,
                        "writers": writers}
                data_file = os.path.join(tmp, "data.lua")
                with open(data_file, "w") as f:
                    f.write("return " + _lua(data) + "\n")
                before = pg_counters(run_db)
                statements_reset()
                t_load = time.monotonic()
                wrk = subprocess.run(["wrk", "-t", str(connections), "-c", str(connections), "-d", f"{duration:g}s",
                                      "--timeout", "20s", "-s", str(HERE / "load.lua"), site.url, "--", data_file],
                                     capture_output=True, text=True, check=False)
                if wrk.returncode != 0:
                    raise RuntimeError(f"wrk failed: {wrk.stdout[-2000:]}\n{wrk.stderr[-2000:]}")
            finally:
                site.stop()
            time.sleep(0.6)  # backends flush their counters when their connections close
            after = pg_counters(run_db)
            stmts = statements(run_db)
            if config in ("cache_page", "cachalot", "cachedeps-orm", "cachedeps-memcached"):
                memory = services.memcached_bytes()
            elif config in ("cacheops", "cachedeps-redis"):
                memory = services.redis_bytes() - redis_base
            elif config == "cachedeps-embedded":
                memory = 0
                for name in os.listdir(tmp):
                    if name.startswith("worker-"):
                        with open(os.path.join(tmp, name)) as f:
                            memory += json.load(f).get("store_bytes", 0)
            else:
                memory = 0
        engines = []
        for name in os.listdir(tmp):
            if name.startswith("worker-"):
                with open(os.path.join(tmp, name)) as f:
                    engines.append(json.load(f).get("engine", {}))
        lines: list[str] = []
        for name in sorted(os.listdir(tmp)):
            if name.startswith("log-"):
                with open(os.path.join(tmp, name)) as f:
                    lines += f.readlines()
        t_check = time.monotonic()
        writes, reads = stale.parse_log(lines)
        forms = sum(1 for ln in lines if ln.startswith("G\t"))
        # Page reads and edit forms are checked alike; the figures below are of page reads.
        verdict = stale.check(seeded, writes, reads, final_rows(run_db)) if check else None
        form_reads = [r for r in reads if r.form and r.status == 200]
        reads = [r for r in reads if not r.form]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        with admin() as a:
            a.execute(f'DROP DATABASE IF EXISTS "{run_db}" WITH (FORCE)')
    ok_reads = [r for r in reads if r.status == 200]
    saved = sum(1 for w in writes if w.saved)
    start = min([r.start for r in reads] + [w.start for w in writes])
    end = max([r.end for r in reads] + [w.end for w in writes if w.end is not None])
    elapsed = max(end - start, 1e-9)
    latencies = [r.end - r.start for r in ok_reads]
    errors = sum(1 for r in reads if r.status != 200) + sum(1 for w in writes if w.status not in (302, None))
    db_time = sum(r.db_time for r in ok_reads)
    requests = len(reads) + forms + len(writes)
    phases = {"setup_s": t_load - t_begin, "load_s": t_check - t_load, "check_s": time.monotonic() - t_check}
    return {**server_figures(stmts, requests), **phases,
        "config": config, "label": CONFIGS[config], "workers": workers, "seconds": elapsed,
        "reads": len(ok_reads), "writes": saved, "forms": forms, "errors": errors,
        "rps": (len(reads) + forms + len(writes)) / elapsed, "reads_per_s": len(ok_reads) / elapsed,
        "p50": _pct(latencies, 0.50) * 1e3, "p99": _pct(latencies, 0.99) * 1e3, "p999": _pct(latencies, 0.999) * 1e3,
        "write_p50": _pct([w.end - w.start for w in writes if w.end is not None], 0.5) * 1e3,
        "q_per_read": sum(r.queries for r in ok_reads) / max(len(ok_reads), 1),
        "feed_q_per_read": sum(r.feed_queries for r in ok_reads) / max(len(ok_reads), 1),
        "xacts_per_s": (after["xacts"] - before["xacts"]) / elapsed,
        "rows_per_req": (after["returned"] + after["fetched"] - before["returned"] - before["fetched"])
        / max(len(reads) + forms + len(writes), 1),
        "hit_rate": sum(1 for r in ok_reads if r.queries - r.feed_queries == 0) / max(len(ok_reads), 1),
        "form_hit_rate": sum(1 for r in form_reads if r.queries - r.feed_queries == 0) / max(len(form_reads), 1),
        "q_per_form": sum(r.queries for r in form_reads) / max(len(form_reads), 1),
        "feed_share": sum(r.feed_time for r in ok_reads) / db_time if db_time else 0.0,
        "memory": memory,
        "stale": None if verdict is None else verdict.stale,
        "checked": None if verdict is None else verdict.checked,
        "unchecked": None if verdict is None else verdict.unchecked,
        "final_mismatch": None if verdict is None else len(verdict.final_mismatch),
        "stale_examples": [] if verdict is None else verdict.examples,
        "purges": sum(e.get("purges", 0) for e in engines),
        "polls": sum(e.get("polls", 0) for e in engines),
        "polls_shared": sum(e.get("polls_shared", 0) for e in engines),
    }


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f}MB" if n >= 1e5 else f"{n / 1e3:.0f}kB"


def table(results: list[dict[str, Any]]) -> list[str]:
    """Return the comparison table's lines (ratios against no cache and the best peer)."""
    base = next((r["rps"] for r in results if r["config"] == "none"), None)
    peers = [r for r in results if r["config"] in PEERS]
    best = max(peers, key=lambda r: r["rps"]) if peers else None
    out = [f"{'configuration':<21}{'req/s':>7}{'vs none':>8}{'vs peer':>8}{'p50 ms':>8}{'p99 ms':>8}"
           f"{'p99.9':>8}{'q/read':>7}{'xact/s':>7}{'hit':>7}{'form hit':>9}{'memory':>9}{'stale':>11}"]
    for r in results:
        vs_none = f"{r['rps'] / base:.2f}x" if base else "-"
        vs_peer = f"{r['rps'] / best['rps']:.2f}x" if best else "-"
        stale_s = "-" if r["stale"] is None else f"{r['stale']}/{r['checked']}"
        out.append(f"{r['config']:<21}{r['rps']:>7.0f}{vs_none:>8}{vs_peer:>8}{r['p50']:>8.1f}{r['p99']:>8.1f}"
                   f"{r['p999']:>8.1f}{r['q_per_read']:>7.2f}{r['xacts_per_s']:>7.0f}{r['hit_rate']:>7.1%}"
                   f"{r.get('form_hit_rate', 0.0):>9.1%}{_mb(r['memory']):>9}{stale_s:>11}")
    if best:
        out.append(f"best peer: {best['config']} ({best['rps']:.0f} req/s)")
    return out


def db_table(results: list[dict[str, Any]]) -> list[str]:
    """Return the database-time table: PostgreSQL's own counters beside the application's measure."""
    out = [f"{'configuration':<21}{'stmts/req':>10}{'exec ms/req':>12}{'plan ms/req':>12}"
           f"{'poll % exec':>12}{'poll % exec+plan':>17}{'poll % app wall':>16}"]
    for r in results:
        if r.get("srv_q_per_req") is None:
            srv = f"{'-':>10}{'-':>12}{'-':>12}{'-':>12}{'-':>17}"
        else:
            srv = (f"{r['srv_q_per_req']:>10.2f}{r['srv_exec_ms_per_req']:>12.3f}{r['srv_plan_ms_per_req']:>12.3f}"
                   f"{r['srv_poll_share']:>12.1%}{r['srv_poll_share_plan']:>17.1%}")
        out.append(f"{r['config']:<21}{srv}{r['feed_share']:>16.1%}")
    out.append("stmts, exec, plan, poll % exec(+plan): pg_stat_statements of the run's database, every request "
               "(reads, forms, posts; BEGIN/COMMIT/SET counted as statements); poll % app wall: the application's "
               "wall time of the poll over all its statements' wall time, page reads only (round trip and CPU "
               "waits included)")
    return out


def top_statements(result: dict[str, Any]) -> list[str]:
    """Return the most frequent statements of one configuration's run (pg_stat_statements)."""
    out = [f"most frequent statements, {result['config']} (per request, mean exec/plan us, share of exec time):"]
    for s in result.get("srv_top") or []:
        out.append(f"  {s['per_req']:>6.2f} {s['mean_us']:>8.1f} {s['plan_us']:>7.1f} {s['share']:>6.1%}  {s['query']}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the configurations and the curves; print the tables; draw the chart."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.deploy.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 s per configuration, 2 workers, short curves")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default 4; --quick 2)")
    parser.add_argument("--duration", type=float, default=None, help="seconds of load per configuration (default 20)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated, from: " + ", ".join(CONFIGS))
    parser.add_argument("--repeat", type=int, default=1, help="run the comparison this many times (ranges printed)")
    parser.add_argument("--curves", default="workers,purge,feed", help="which curves (workers, purge, feed; '' none)")
    parser.add_argument("--out", default=str(ROOT / ".cache" / "bench-deploy"), help="where results.json goes")
    parser.add_argument("--chart", default=None,
                        help="where the chart (PNG) goes (default OUT/deploy.png; docs/img/deploy.png for the docs)")
    parser.add_argument("--shared-pg", action="store_true",
                        help="use the server at $BENCH_PG (default 127.0.0.1:5432) instead of starting one with "
                             "pg_stat_statements (database time then only as the application measures it)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per gunicorn worker (default 1: sync workers; more: gthread)")
    args = parser.parse_args(argv)
    configs = [c for c in args.configs.split(",") if c]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    workers = args.workers or (2 if args.quick else 4)
    duration = args.duration or (5 if args.quick else 20)
    connections = max(4, 2 * workers)
    seed_db, run_db = "bench_deploy_seed", "bench_deploy_run"
    began = time.monotonic()
    global PG, PG_STATEMENTS, THREADS
    THREADS = max(1, args.threads)
    with contextlib.ExitStack() as stack:
        if not args.shared_pg:
            from benchmarks.deploy.pgcluster import Cluster

            cluster = stack.enter_context(Cluster(free_port(), reference_dsn=SHARED_PG))
            PG, PG_STATEMENTS = cluster.dsn("postgres"), True
            print(f"PostgreSQL: the benchmark's own cluster on 127.0.0.1:{cluster.port} with pg_stat_statements "
                  f"(settings copied from the shared server: {', '.join(f'{k}={v}' for k, v in sorted(cluster.settings.items())) or 'none'})",
                  flush=True)
        else:
            print(f"PostgreSQL: {SHARED_PG} (no pg_stat_statements: database time as the application measures it)")
        return _main(args, configs, workers, duration, connections, seed_db, run_db, began)


def _main(args: argparse.Namespace, configs: list[str], workers: int, duration: float, connections: int,
          seed_db: str, run_db: str, began: float) -> int:
    t = time.monotonic()
    seed(seed_db)
    seeded, form = load_seeded(seed_db)
    print(f"seeded in {time.monotonic() - t:.0f}s", flush=True)
    os.makedirs(args.out, exist_ok=True)
    everything: dict[str, Any] = {"workers": workers, "duration": duration, "connections": connections, "runs": []}
    try:
        for n in range(args.repeat):
            results = []
            for config in configs:
                r = run_config(config, seed_db=seed_db, run_db=run_db, seeded=seeded, form=form,
                               workers=workers, duration=duration, connections=connections)
                results.append(r)
                print(f"  {config}: {r['rps']:.0f} req/s, stale {r['stale']}/{r['checked']}, errors {r['errors']} "
                      f"(setup {r['setup_s']:.0f}s, load {r['load_s']:.0f}s, check {r['check_s']:.0f}s)"
                      + (f", final rows unexplained {r['final_mismatch']}" if r["final_mismatch"] else ""),
                      flush=True)
                for ex in r["stale_examples"][:2]:
                    print(f"    stale: {ex}")
            everything["runs"].append(results)
            print(f"\nrun {n + 1}: {workers} gunicorn workers, {connections} connections, {duration:g}s per "
                  f"configuration, {WRITE_SHARE:.0%} edits through the form; PostgreSQL 127.0.0.1")
            print("\n".join(table(results)), flush=True)
            print("\ndatabase time (PostgreSQL's counters beside the application's)")
            print("\n".join(db_table(results)), flush=True)
            for r in results:
                if r["config"] in ("none", "cachedeps-memcached") and r.get("srv_top"):
                    print("\n".join(top_statements(r)), flush=True)
        if args.repeat > 1:
            print("\nranges over runs (req/s, p99 ms):")
            for i, config in enumerate(configs):
                rps = [run[i]["rps"] for run in everything["runs"]]
                p99 = [run[i]["p99"] for run in everything["runs"]]
                print(f"  {config:<21} {min(rps):>6.0f}-{max(rps):<6.0f} {min(p99):>7.1f}-{max(p99):<7.1f}")
        from benchmarks.deploy import curves

        wanted = [c for c in args.curves.split(",") if c]
        if "workers" in wanted:
            everything["workers_curve"] = curves.workers_curve(
                lambda config, w, d: run_config(config, seed_db=seed_db, run_db=run_db, seeded=seeded, form=form,
                                                workers=w, duration=d, connections=max(4, 2 * w), check=False),
                quick=args.quick)
        if "purge" in wanted:
            everything["purge_curve"] = curves.purge_curve(quick=args.quick)
        if "feed" in wanted:
            everything["feed_curve"] = curves.feed_curve(_dsn, admin, quick=args.quick)
    finally:
        with admin() as a:
            a.execute(f'DROP DATABASE IF EXISTS "{seed_db}" WITH (FORCE)')
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(everything, f, indent=1, default=str)
    from benchmarks.deploy import chart

    chart_path = args.chart or os.path.join(args.out, "deploy.png")
    chart.draw(everything, chart_path)
    print(f"chart: {chart_path}")
    print(f"(whole comparison: {time.monotonic() - began:.0f}s; results in {args.out}/results.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
