"""A PostgreSQL cluster of the benchmark's own, with ``pg_stat_statements`` loaded.

The shared server on 127.0.0.1:5432 does not preload ``pg_stat_statements``, so database
time could only be measured in the application (wall time of each statement: the server's
time plus the round trip and, on a loaded machine, CPU waits on both sides). For the run the
benchmark starts its own cluster instead: ``initdb`` into a temporary directory, a free
loopback port, ``shared_preload_libraries = pg_stat_statements`` (with ``track_planning``
on, so planning time is counted too) and otherwise the settings of the shared server that
bear on speed (``shared_buffers``, ``fsync``, ``synchronous_commit``, ``autovacuum``, ...),
copied from it when it answers. Running as root, the server runs as the ``postgres`` user
(``runuser``), which owns the directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from typing import Any

__all__ = ["Cluster", "binaries", "COPIED_SETTINGS"]

#: settings read from the shared server (when it answers) and passed to the benchmark's own
COPIED_SETTINGS = ("shared_buffers", "fsync", "synchronous_commit", "full_page_writes", "autovacuum",
                   "max_connections", "work_mem", "max_wal_size", "min_wal_size", "wal_level", "jit",
                   "random_page_cost", "effective_cache_size")


def binaries() -> str | None:
    """Return the newest ``/usr/lib/postgresql/*/bin`` holding ``initdb`` and ``postgres`` (or PATH's)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[-3]) if p.split("/")[-3].isdigit() else 0)
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _copied(reference_dsn: str | None) -> dict[str, str]:
    if not reference_dsn:
        return {}
    try:
        import psycopg

        with psycopg.connect(reference_dsn, connect_timeout=3) as c:
            rows = c.execute("SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%s)",
                             (list(COPIED_SETTINGS),)).fetchall()
    except Exception:
        return {}
    out = {}
    for name, setting, unit in rows:
        if unit == "8kB":
            setting = f"{int(setting) * 8}kB"
        elif unit in ("kB", "MB"):
            setting = f"{setting}{unit}"
        out[name] = setting
    return out


class Cluster:
    """``with Cluster(port) as c: c.dsn("postgres")`` — initdb, start, stop, remove."""

    def __init__(self, port: int, reference_dsn: str | None = None) -> None:
        self.port = port
        self.bin = binaries()
        if self.bin is None:
            raise RuntimeError("PostgreSQL's server binaries (initdb, postgres) are not installed")
        self.settings = _copied(reference_dsn)
        self.dir = ""
        self.proc: subprocess.Popen | None = None
        self._user: list[str] = []

    def dsn(self, db: str) -> str:
        """Return the libpq URL of database ``db`` on this cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self._user, *cmd], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def __enter__(self) -> Cluster:
        self.dir = tempfile.mkdtemp(prefix="bench_deploy_pg_")
        if os.geteuid() == 0:  # the server refuses to run as root
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._user = ["runuser", "-u", "postgres", "--"]
        data = os.path.join(self.dir, "data")
        self._run(os.path.join(self.bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync")
        options = {**self.settings, "listen_addresses": "127.0.0.1", "port": str(self.port),
                   "unix_socket_directories": self.dir, "shared_preload_libraries": "pg_stat_statements",
                   "pg_stat_statements.track_planning": "on", "pg_stat_statements.max": "5000",
                   "logging_collector": "off"}
        args = [a for k, v in options.items() for a in ("-c", f"{k}={v}")]
        self.proc = subprocess.Popen([*self._user, os.path.join(self.bin, "postgres"), "-D", data, *args],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "log"), "w"))
        import psycopg

        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2, autocommit=True) as c:
                    c.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                    with psycopg.connect(self.dsn("template1"), autocommit=True) as t:
                        t.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                break
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    with open(os.path.join(self.dir, "log")) as f:
                        raise RuntimeError(f"the benchmark's PostgreSQL did not start:\n{f.read()[-2000:]}")
                time.sleep(0.2)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            subprocess.run([*self._user, os.path.join(self.bin, "pg_ctl"), "-D", os.path.join(self.dir, "data"),
                            "-m", "fast", "-w", "stop"], check=False, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
