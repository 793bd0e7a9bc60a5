"""Write cost of capture triggers: the same writes without cachedeps, with the adapter
appending keys (no capture), and with capture triggers, on SQLite, PostgreSQL and MariaDB.

Rows: an ORM save of one row (SQLAlchemy session, commit), an ORM bulk UPDATE of 10,000
rows, and the same single-row and 10,000-row UPDATEs from a plain DB-API connection (the
external writer capture exists for; without capture it writes no keys at all). Figures:
time per statement, the ratio capture/adapter (ORM) or capture/none (external), and the
feed rows each statement adds. Run: ``python -m benchmarks capture [--quick]``. Needs
PostgreSQL (``CACHEDEPS_TEST_PG`` or postgresql://postgres@127.0.0.1:5432/test) and MariaDB/MySQL
(``CACHEDEPS_TEST_MYSQL`` or mysql://root@127.0.0.1:3306/test) for their rows.
SQLite runs in WAL mode with ``synchronous=NORMAL`` (no fsync per commit).
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any, Callable

from sqlalchemy import Boolean, Float, Integer, String, create_engine, event, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

__all__ = ["main"]

PG_DSN = os.environ.get("CACHEDEPS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("CACHEDEPS_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")
ROWS = 10_000


def _mysql_target() -> str:
    """Return the SQLAlchemy URL (PyMySQL) of ``MYSQL_URL``; raise when it is not reachable."""
    import pymysql
    from urllib.parse import unquote, urlsplit

    u = urlsplit(MYSQL_URL)
    params = dict(host=u.hostname or "127.0.0.1", port=u.port or 3306, user=unquote(u.username or "root"),
                  password=unquote(u.password or ""), database=u.path.lstrip("/") or "test")
    pymysql.connect(**params, connect_timeout=2).close()
    auth = params["user"] + (f":{params['password']}" if params["password"] else "")
    return f"mysql+pymysql://{auth}@{params['host']}:{params['port']}/{params['database']}?charset=utf8mb4"


class _Base(DeclarativeBase):
    pass


class BenchCapItem(_Base):
    __tablename__ = "bench_cap_item"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # MySQL: id 0 is not "next"
    name: Mapped[str] = mapped_column(String(60))
    n: Mapped[int] = mapped_column(Integer)
    flag: Mapped[bool] = mapped_column(Boolean)
    price: Mapped[float] = mapped_column(Float)


def _timed(fn: Callable[[int], Any], ops: int) -> float:
    """Return seconds per call of ``fn(i)`` (best of 3 runs of ``ops`` calls)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for i in range(ops):
            fn(i)
        best = min(best, (time.perf_counter() - start) / ops)
    return best


class _Setup:
    def __init__(self, url: str, mode: str) -> None:
        import sqla_cachedeps

        self.engine = create_engine(url)
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":  # as SQLite is run in production: WAL, no fsync per commit
            event.listen(self.engine, "connect",
                         lambda c, _: c.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"))
        with self.engine.begin() as c:
            c.exec_driver_sql("DROP TABLE IF EXISTS bench_cap_item")
            c.exec_driver_sql("DROP TABLE IF EXISTS cachedeps_change")
        _Base.metadata.create_all(self.engine)
        sqla_cachedeps.create_feed_table(self.engine)
        with self.engine.begin() as c:
            c.execute(BenchCapItem.__table__.insert(), [
                {"id": i, "name": f"item {i}", "n": i % 100, "flag": bool(i % 2), "price": i / 7} for i in range(ROWS)])
        self.Session = sessionmaker(self.engine)
        self.handle = None
        if mode == "capture":
            sqla_cachedeps.capture(self.engine, [BenchCapItem])
        if mode != "none":
            self.handle = sqla_cachedeps.install(self.Session, "embedded://", capture=mode == "capture")

    def feed_rows(self) -> int:
        with self.engine.connect() as c:
            return int(c.exec_driver_sql("SELECT COUNT(*) FROM cachedeps_change").scalar())

    def close(self) -> None:
        import sqla_cachedeps

        if self.handle is not None:
            self.handle.uninstall()
        sqla_cachedeps.remove_capture(self.engine)
        with self.engine.begin() as c:
            c.exec_driver_sql("DROP TABLE IF EXISTS bench_cap_item")
        self.engine.dispose()


def _measure(url: str, mode: str, ops: int) -> dict[str, tuple[float, float]]:
    """Return {operation: (seconds per statement, feed rows per statement)}."""
    s = _Setup(url, mode)
    out: dict[str, tuple[float, float]] = {}
    try:
        def orm_save(i: int) -> None:
            with s.Session.begin() as session:
                item = session.get(BenchCapItem, (i * 37) % ROWS)
                item.n += 1
                item.name = f"item {i} saved"

        def orm_bulk(i: int) -> None:
            with s.Session.begin() as session:
                session.execute(update(BenchCapItem).values(n=BenchCapItem.n + 1))

        raw = s.engine.raw_connection()

        def ext_one(i: int) -> None:
            cur = raw.cursor()
            cur.execute(f"UPDATE bench_cap_item SET n = n + 1, name = 'ext {i}' WHERE id = {(i * 37) % ROWS}")
            raw.commit()

        def ext_bulk(i: int) -> None:
            cur = raw.cursor()
            cur.execute("UPDATE bench_cap_item SET n = n + 1")
            raw.commit()

        for name, fn, n in (("ORM save, 1 row", orm_save, ops), ("ORM UPDATE, 10,000 rows", orm_bulk, 3),
                            ("DB-API UPDATE, 1 row", ext_one, ops), ("DB-API UPDATE, 10,000 rows", ext_bulk, 3)):
            before = s.feed_rows()
            seconds = _timed(fn, n)
            rows = (s.feed_rows() - before) / (3 * n)
            out[name] = (seconds, rows)
        raw.close()
    finally:
        s.close()
    return out


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e6:9.0f} µs" if seconds < 0.01 else f"{seconds * 1e3:9.1f} ms"


def main(quick: bool) -> None:
    ops = 50 if quick else 300
    targets = []
    with tempfile.TemporaryDirectory() as tmp:
        targets.append(("SQLite", f"sqlite:///{tmp}/bench.sqlite3"))
        try:
            import psycopg

            psycopg.connect(PG_DSN, connect_timeout=2).close()
            targets.append(("PostgreSQL", "postgresql+psycopg://" + PG_DSN.split("://", 1)[1]))
        except Exception as exc:  # noqa: BLE001 - reported, the SQLite rows still run
            print(f"PostgreSQL unavailable at {PG_DSN}: {exc}")
        try:
            targets.append(("MariaDB", _mysql_target()))
        except Exception as exc:  # noqa: BLE001 - reported, the other rows still run
            print(f"MariaDB/MySQL unavailable at {MYSQL_URL}: {exc}")
        print(f"{'database':<11} {'statement':<27} {'no cachedeps':>12} {'adapter':>12} {'capture':>12} "
              f"{'ratio':>6} {'feed rows adapter':>18} {'feed rows capture':>18}")
        for label, url in targets:
            results = {mode: _measure(url, mode, ops) for mode in ("none", "adapter", "capture")}
            for op in results["none"]:
                none_s, _ = results["none"][op]
                ad_s, ad_rows = results["adapter"][op]
                cap_s, cap_rows = results["capture"][op]
                base = ad_s if op.startswith("ORM") else none_s
                print(f"{label:<11} {op:<27} {_fmt(none_s):>12} {_fmt(ad_s):>12} {_fmt(cap_s):>12} "
                      f"{cap_s / base:5.2f}x {ad_rows:18.1f} {cap_rows:18.1f}", flush=True)
    print("ratio: capture / adapter for ORM writes, capture / no cachedeps for DB-API writes.")
    print("DB-API writes without capture write no keys (the stale reads capture prevents).")
