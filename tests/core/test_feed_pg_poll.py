"""The PostgreSQL feed poll: prepared once and planned no more, and sound when it takes two
statements (more than FIRST_ROWS rows), whatever happens to the feed between them."""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator

import pytest

from cachedeps.errors import ConfigurationError
from cachedeps.feed import FIRST_ROWS, SqlFeed

pytestmark = pytest.mark.postgres

TABLE = "cachedeps_change_polltest"


@pytest.fixture
def dsn(postgres_dsn: str) -> Iterator[str]:
    import psycopg

    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f"DROP TABLE IF EXISTS {TABLE}")
        for stmt in SqlFeed("postgresql", table=TABLE).ddl():
            admin.execute(stmt)
    yield postgres_dsn
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f"DROP TABLE IF EXISTS {TABLE}")


def poller(dsn: str) -> Any:
    """An autocommit connection on which psycopg would not prepare anything by itself."""
    import psycopg

    return psycopg.connect(dsn, autocommit=True, prepare_threshold=1000)


def write(dsn: str, feed: SqlFeed, keys: list[str]) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        tid = feed.append(conn, keys)
        conn.commit()
    return tid


def prepared_polls(conn: Any) -> list[tuple[str, int, int]]:
    return [
        (r[0], int(r[1]), int(r[2]))
        for r in conn.execute(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            (f"%FROM {TABLE} WHERE tid >=%",),
        )
    ]


def test_prepared_poll_stops_being_planned(dsn):
    """With prepare=True the poll is one prepared statement whose generic plan the server
    picks after its first custom plans, on a large table too (the first statement's small
    LIMIT keeps the generic plan the cheaper one); each poll still sees the new row."""
    import psycopg

    feed = SqlFeed("postgresql", table=TABLE, prepare=True)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"INSERT INTO {TABLE} (key) SELECT 'item:' || g FROM generate_series(1, 20000) g")
        admin.execute(f"ANALYZE {TABLE}")
    conn = poller(dsn)
    try:
        position = feed.head(conn)
        for i in range(12):
            tid = write(dsn, feed, [f"item:new{i}"])
            p = feed.poll(conn, position)
            assert (p.complete, p.exact, p.changes) == (True, True, [(tid, f"item:new{i}")])
            position = p.tid
        [(statement, generic, custom)] = prepared_polls(conn)
        assert f"LIMIT {FIRST_ROWS})" in statement
        assert custom <= 5 and generic >= 12 - custom, (generic, custom)
    finally:
        conn.close()


def test_unprepared_poll_prepares_nothing(dsn):
    feed = SqlFeed("postgresql", table=TABLE)
    conn = poller(dsn)
    try:
        position = feed.head(conn)
        for _ in range(8):
            position = feed.poll(conn, position).tid
        assert prepared_polls(conn) == []
    finally:
        conn.close()


def test_prepare_is_for_postgresql_only():
    with pytest.raises(ConfigurationError, match="PostgreSQL"):
        SqlFeed("sqlite", prepare=True)


class Between:
    """A connection whose first poll statement is followed by ``hook()`` (before the second)."""

    def __init__(self, conn: Any, hook: Callable[[], None]) -> None:
        self.conn, self.hook, self.statements = conn, hook, 0

    def cursor(self) -> Any:
        owner, cur = self, self.conn.cursor()

        class Cursor:
            def execute(self, sql: str, params: Any = None, prepare: bool | None = None) -> Any:
                result = cur.execute(sql, params, prepare=prepare)
                owner.statements += 1
                if owner.statements == 1:
                    owner.hook()
                return result

            def fetchall(self) -> list[Any]:
                return cur.fetchall()

            def fetchone(self) -> Any:
                return cur.fetchone()

            def close(self) -> None:
                cur.close()

        return Cursor()


def burst(dsn: str, feed: SqlFeed, n: int) -> list[int]:
    """Commit ``n`` changes, one tid each; return their tids."""
    return [write(dsn, feed, [f"item:{i}"]) for i in range(n)]


@pytest.mark.parametrize("prepare", [True, False])
def test_burst_over_first_rows_comes_whole(dsn, prepare):
    feed = SqlFeed("postgresql", table=TABLE, prepare=prepare)
    conn = poller(dsn)
    try:
        start = write(dsn, feed, ["item:start"])
        tids = burst(dsn, feed, 2 * FIRST_ROWS + 7)
        feed.head(conn)  # resolves the statements: the poll is then two of them
        counted = Between(conn, lambda: None)
        p = feed.poll(counted, start)
        assert counted.statements == 2
        assert p.complete and p.exact and p.tid == tids[-1]
        assert [t for t, _ in p.changes] == tids
    finally:
        conn.close()


def test_burst_over_max_rows_is_incomplete(dsn):
    feed = SqlFeed("postgresql", table=TABLE, prepare=True, max_rows=FIRST_ROWS + 20)
    conn = poller(dsn)
    try:
        start = write(dsn, feed, ["item:start"])
        tids = burst(dsn, feed, FIRST_ROWS + 30)
        p = feed.poll(conn, start)
        assert not p.complete and not p.exact and p.tid == tids[-1]
    finally:
        conn.close()


def test_commits_between_the_two_statements_are_read(dsn):
    feed = SqlFeed("postgresql", table=TABLE, prepare=True)
    conn = poller(dsn)
    try:
        start = write(dsn, feed, ["item:start"])
        feed.head(conn)
        tids = burst(dsn, feed, FIRST_ROWS + 5)
        late: list[int] = []
        p = feed.poll(Between(conn, lambda: late.extend(burst(dsn, feed, 3))), start)
        assert p.complete and p.tid == late[-1]
        assert [t for t, _ in p.changes] == tids + late
    finally:
        conn.close()


def test_rows_lost_between_the_two_statements_make_the_poll_incomplete(dsn):
    """The row the first statement ended at is deleted before the second runs: rows after
    it may be lost too, so the poll must not come back complete."""
    import psycopg

    feed = SqlFeed("postgresql", table=TABLE, prepare=True)
    conn = poller(dsn)
    try:
        start = write(dsn, feed, ["item:start"])
        feed.head(conn)
        tids = burst(dsn, feed, FIRST_ROWS + 20)
        last_of_first = tids[FIRST_ROWS - 2]  # the anchor, then FIRST_ROWS - 1 changes

        def delete() -> None:
            with psycopg.connect(dsn, autocommit=True) as admin:
                admin.execute(f"DELETE FROM {TABLE} WHERE tid BETWEEN %s AND %s", (last_of_first, last_of_first + 5))

        p = feed.poll(Between(conn, delete), start)
        assert not p.complete and not p.exact
        assert p.changes == []
        assert p.tid >= tids[-1]
    finally:
        conn.close()


@pytest.mark.parametrize("how", ["truncate", "setval"])
def test_sequence_reset_between_the_two_statements_moves_it_forward(dsn, how):
    """The numbering goes back between the two statements (rows gone with it, or kept):
    the poll is incomplete and the sequence is moved past every position handed out."""
    import psycopg

    feed = SqlFeed("postgresql", table=TABLE, prepare=True)
    conn = poller(dsn)
    try:
        start = write(dsn, feed, ["item:start"])
        feed.head(conn)
        tids = burst(dsn, feed, FIRST_ROWS + 20)

        def reset() -> None:
            with psycopg.connect(dsn, autocommit=True) as admin:
                if how == "truncate":
                    admin.execute(f"TRUNCATE {TABLE} RESTART IDENTITY")
                else:
                    admin.execute(f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'tid'), %s)", (start,))

        p = feed.poll(Between(conn, reset), start)
        assert not p.complete and not p.exact
        assert p.tid > tids[-1]
        assert write(dsn, feed, ["item:after"]) > p.tid  # later tids are above every stamp given
    finally:
        conn.close()


def test_concurrent_writers_every_change_polled_once(dsn):
    """Writers commit while a prepared poller keeps polling from its position, often more
    than FIRST_ROWS behind: the polls' changes, chained, are exactly the committed tids."""
    feed = SqlFeed("postgresql", table=TABLE, prepare=True)
    conn = poller(dsn)
    committed: list[int] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        import psycopg

        with psycopg.connect(dsn) as c:
            for i in range(n):
                tid = feed.append(c, [f"w:{threading.get_ident()}:{i}"])
                c.commit()
                with lock:
                    committed.append(tid)

    try:
        position = write(dsn, feed, ["item:start"])
        seen: list[int] = []
        threads = [threading.Thread(target=writer, args=(150,)) for _ in range(3)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads) or position < max(committed, default=0):
            p = feed.poll(conn, position)
            assert p.complete
            seen.extend(t for t, _ in p.changes)
            position = p.tid
        for t in threads:
            t.join()
        assert seen == sorted(committed)
    finally:
        conn.close()
