"""SQLAlchemy adapter on PostgreSQL: cached ``session.get`` and cached queries vs the database.

Figures per operation (µs), hits against the embedded store and memcached, the speed-up
over the same uncached read, and store round trips per hit (counted by a wrapping store).
Run: ``python -m benchmarks sqla [--quick]``. Needs PostgreSQL (``CACHEDEPS_TEST_PG`` or
postgresql://postgres@127.0.0.1:5432/test) and, for the memcached rows, a memcached binary.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from typing import Any, Callable

from sqlalchemy import ForeignKey, String, create_engine, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

__all__ = ["main"]

PG_DSN = os.environ.get("CACHEDEPS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
_ROUND_TRIPS = (
    "get", "get_many", "get_item", "gets", "gets_many", "set", "set_many", "add", "replace", "cas",
    "append", "prepend", "delete", "delete_many", "incr", "decr", "touch", "link", "invalidate",
)


class _Base(DeclarativeBase):
    pass


class BenchAuthor(_Base):
    __tablename__ = "bench_author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class BenchBook(_Base):
    __tablename__ = "bench_book"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("bench_author.id"), index=True)
    title: Mapped[str] = mapped_column(String(100))
    pages: Mapped[int]


class _CountingStore:
    """Delegate to a store, counting the calls that are a round trip to it."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.calls = 0
        self.name = getattr(store, "name", "store")

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name in _ROUND_TRIPS and callable(attr):
            def counted(*args: Any, **kw: Any) -> Any:
                self.calls += 1
                return attr(*args, **kw)
            return counted
        return attr


def _memcached() -> subprocess.Popen | None:
    binary = shutil.which("memcached") or ("/usr/bin/memcached" if os.path.exists("/usr/bin/memcached") else None)
    if binary is None:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64", "-t", "2"]
    if os.geteuid() == 0:
        args += ["-u", "root"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            proc.port = port  # type: ignore[attr-defined]
            return proc
        except OSError:
            time.sleep(0.02)
    proc.kill()
    return None


def _per_op(fn: Callable[[int], Any], ops: int, repeats: int = 3) -> float:
    """Return microseconds per call of ``fn(i)`` for i in range(ops), best of ``repeats``
    (the machine's other work only ever adds time)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(ops):
            fn(i)
        best = min(best, time.perf_counter() - start)
    return best / ops * 1e6


def _reads(factory: Any, books: int, authors: int, cached: bool) -> tuple[Callable, Callable, Callable, Any]:
    """Return (get(i), query(i), columns(i), session): reads inside one open session."""
    from sqla_cachedeps import FromCache

    session = factory()
    session.connection()  # begin (and poll) outside the timed loop

    def get(i: int) -> None:
        obj = session.get(BenchBook, 1 + i % books)
        session.expunge(obj)  # the next get of this id must not come from the identity map

    def query(i: int) -> None:
        stmt = select(BenchBook).where(BenchBook.author_id == 1 + i % authors)
        if cached:
            stmt = stmt.options(FromCache())
        for obj in session.scalars(stmt).all():
            session.expunge(obj)

    def columns(i: int) -> None:
        stmt = select(BenchBook.id, BenchBook.title).where(BenchBook.author_id == 1 + i % authors)
        if cached:
            stmt = stmt.execution_options(cachedeps=True)
        session.execute(stmt).all()

    return get, query, columns, session


def main(quick: bool) -> None:
    """Print the figures; ``quick`` runs fewer operations (under 20 seconds)."""
    import cachedeps
    import sqla_cachedeps
    from sqla_cachedeps import CachingSession
    from sqla_cachedeps.feed import feed_for_dialect

    ops = 1000 if quick else 10000
    books, authors = 1000, 100
    url = "postgresql+psycopg://" + PG_DSN.split("://", 1)[1]
    schema = f"bench_sqla_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:
        print(f"PostgreSQL unavailable at {PG_DSN}: {exc}")
        return
    engine = create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    memcached = None
    try:
        _Base.metadata.create_all(engine)
        sqla_cachedeps.create_feed_table(engine)
        with sessionmaker(engine).begin() as s:
            s.add_all([BenchAuthor(id=a, name=f"a{a}") for a in range(1, authors + 1)])
            s.add_all([
                BenchBook(id=b, author_id=1 + b % authors, title=f"book {b}", pages=b) for b in range(1, books + 1)
            ])
        rows: list[tuple[str, str, float, float | None, float | None]] = []

        plain = sessionmaker(engine)
        get, query, columns, session = _reads(plain, books, authors, cached=False)
        get(0), query(0), columns(0)
        db_get = _per_op(get, ops)
        db_query = _per_op(query, ops // 2)
        db_columns = _per_op(columns, ops // 2)
        session.close()
        rows.append(("session.get", "none (PostgreSQL)", db_get, None, None))
        rows.append(("entity query", "none (PostgreSQL)", db_query, None, None))
        rows.append(("column query", "none (PostgreSQL)", db_columns, None, None))

        stores: list[tuple[str, Any]] = [("embedded", cachedeps.open_store("embedded://"))]
        memcached = _memcached()
        if memcached is not None:
            stores.append(("memcached", cachedeps.open_store(f"memcache://127.0.0.1:{memcached.port}")))
        for label, raw_store in stores:
            store = _CountingStore(raw_store)
            cache = cachedeps.Cache(store, feed=feed_for_dialect(engine.dialect), namespace=f"b{label}:")
            for session_class in (Session, CachingSession):
                factory = sessionmaker(engine, class_=session_class)
                handle = sqla_cachedeps.install(factory, cache)
                try:
                    get, query, columns, session = _reads(factory, books, authors, cached=True)
                    for i in range(books):  # warm every entry
                        get(i)
                    for i in range(authors):
                        query(i)
                        columns(i)
                    before = cache.stats()
                    store.calls = 0
                    t_get = _per_op(get, ops)
                    get_trips = store.calls / (3 * ops)
                    name = "session.get" if session_class is Session else "CachingSession.get"
                    rows.append((name, label, t_get, db_get / t_get, get_trips))
                    if session_class is Session:
                        store.calls = 0
                        t_query = _per_op(query, ops // 2)
                        rows.append(("entity query", label, t_query, db_query / t_query,
                                     store.calls / (3 * (ops // 2))))
                        store.calls = 0
                        t_columns = _per_op(columns, ops // 2)
                        rows.append(("column query", label, t_columns, db_columns / t_columns,
                                     store.calls / (3 * (ops // 2))))
                    after = cache.stats()
                    if after["misses"] != before["misses"] or after["stale"] != before["stale"]:
                        print(f"warning: {label}: misses during the timed hits")
                    session.close()
                finally:
                    handle.uninstall()
            raw_store.close()

        print(f"best of 3 runs of {ops} gets / {ops // 2} queries (10 rows each); hits after warming every entry")
        print(f"{'read':<20}{'store':<20}{'µs/op':>10}{'vs DB':>10}{'trips/hit':>11}")
        for name, label, us, ratio, trips in rows:
            r = "" if ratio is None else f"{ratio:.1f}x"
            t = "" if trips is None else f"{trips:.2f}"
            print(f"{name:<20}{label:<20}{us:>10.1f}{r:>10}{t:>11}")
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
        if memcached is not None:
            memcached.kill()
            memcached.wait()
