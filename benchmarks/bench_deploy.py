"""Deploy: the demo site as deployed, under HTTP load, against cachalot and cacheops.

PostgreSQL (a cluster of its own, initdb'd into a temporary directory with pg_stat_statements
loaded and the shared server's settings; ``--shared-pg``: 127.0.0.1:5432 instead), memcached
and Redis on free loopback ports, the demo under gunicorn (4 workers by default) for each
configuration in turn, driven by wrk: 95% page reads skewed towards popular pages, 5%
edits through the site's own form (logged in, CSRF). Configurations: no cache, Django's
``cache_page`` (memcached), django-cachalot (memcached), django-cacheops (Redis,
``cached_view_as``), cachedeps ORM only, and cachedeps with ``@cached_view`` and fragments on
memcached, Redis and the embedded store. Printed per configuration: requests/s, p50/p99/p99.9,
queries per read and transactions per second (``pg_stat_database``), statements and database
time per request and the feed poll's share of it (``pg_stat_statements``, beside the
application's wall-time measure), hit rate, cache memory, stale pages (every page read
checked against the data it had to show); then the scale curves.

The peers, gunicorn and matplotlib are installed into the benchmark's own virtual
environment (``.cache/bench-venv``, created on first use), never as dependencies of
cachedeps. Not run by a bare ``python -m benchmarks`` (it takes minutes): name it, or
``make bench-deploy``. Extra arguments: ``BENCH_DEPLOY_ARGS="--repeat 2 --chart docs/img/deploy.png"``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["main", "DEFAULT", "ensure_venv"]

#: left out of a bare ``python -m benchmarks``
DEFAULT = False

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".cache" / "bench-venv"
#: what the benchmark's venv holds besides cachedeps (the peers pinned to what was measured)
REQUIREMENTS = ["Django>=5.2,<6", "gunicorn>=23", "django-cachalot==2.9.1", "django-cacheops==7.2",
                "matplotlib>=3.8", "psycopg[binary]>=3.1"]


def ensure_venv() -> Path:
    """Create ``.cache/bench-venv`` with cachedeps (editable), the peers and tools; return its python."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".bench-installed"
    wanted = "\n".join(REQUIREMENTS)
    if stamp.exists() and stamp.read_text() == wanted:
        return python
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    print(f"installing the benchmark's environment into {VENV} ...", flush=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", f"{ROOT}[django,memcache,redis,postgres]",
                    *REQUIREMENTS], check=True)
    stamp.write_text(wanted)
    return python


def main(quick: bool) -> None:
    """Set up the benchmark's venv, then run the comparison and the curves in it."""
    missing = [tool for tool in ("wrk", "memcached", "redis-server", "redis-cli") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"deploy benchmark: {', '.join(missing)} not installed "
                         f"(apt-get install wrk memcached redis-server)")
    python = ensure_venv()
    args = ["--quick"] if quick else []
    args += shlex.split(os.environ.get("BENCH_DEPLOY_ARGS", ""))
    code = subprocess.run([str(python), "-m", "benchmarks.deploy.run", *args], cwd=ROOT, check=False).returncode
    if code:
        raise SystemExit(f"deploy benchmark failed (exit status {code})")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
