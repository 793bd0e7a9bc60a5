"""PostgreSQL: the feed makes sure the planner has statistics on its table, so that the
poll reads the index from its position instead of scanning and sorting the whole table
(``SqlFeed``, *Statistics*). Autovacuum is off on the test tables: what is measured is what
the feed does by itself, as on a server with autovacuum off or before its first ANALYZE."""

from __future__ import annotations

import uuid

import pytest

from cachedeps.feed import FIRST_ROWS, SqlFeed

from ._support import pg_feed_table


@pytest.fixture
def pg(postgres_dsn):
    pytest.importorskip("psycopg")
    with pg_feed_table(postgres_dsn, "cachedeps_stats_") as (feed, admin, table):
        admin.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        yield feed, admin, table


def _write(conn, feed, n):
    with conn.transaction():
        return feed.append(conn, [f"item:{i}" for i in range(n)])


class _Cursor:
    """A psycopg cursor whose statements pass through ``rewrite`` (which may record or change them)."""

    def __init__(self, cur, rewrite):
        self.cur, self.rewrite = cur, rewrite

    def execute(self, sql, *args, **kwargs):
        return self.cur.execute(self.rewrite(sql), *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.cur, name)


class _Conn:
    def __init__(self, conn, rewrite):
        self.conn, self.rewrite = conn, rewrite

    def cursor(self):
        return _Cursor(self.conn.cursor(), self.rewrite)


def _has_statistics(admin, table):
    return admin.execute("SELECT count(*) FROM pg_stats WHERE tablename = %s AND attname = 'tid'",
                         (table,)).fetchone()[0] > 0


def _generic_plan(admin, table, after):
    """Return the plan PostgreSQL runs a prepared poll's first statement with, after five executions."""
    sql = (f"SELECT tid, key FROM (SELECT tid, key FROM {table} WHERE tid >= $1 ORDER BY tid "
           f"LIMIT {FIRST_ROWS}) AS c")
    name = "poll_" + uuid.uuid4().hex[:8]
    admin.execute(f"PREPARE {name}(bigint) AS {sql}")
    try:
        admin.execute("SET plan_cache_mode = force_generic_plan")
        plan = "\n".join(r[0] for r in admin.execute(f"EXPLAIN EXECUTE {name}({after})"))
        admin.execute("SET plan_cache_mode = force_custom_plan")
        custom = "\n".join(r[0] for r in admin.execute(f"EXPLAIN EXECUTE {name}({after})"))
    finally:
        admin.execute("RESET plan_cache_mode")
        admin.execute(f"DEALLOCATE {name}")
    return plan, custom


def test_writers_analyze_a_feed_table_without_statistics_and_polls_use_the_index(pg):
    feed, admin, table = pg
    # Many small commits, as a site's writers make them: the table grows past what the
    # planner would scan without statistics.
    tid = 0
    for _ in range(400):
        tid = _write(admin, feed, 5)
    assert _has_statistics(admin, table)
    generic, custom = _generic_plan(admin, table, tid)
    assert "Index Scan" in generic and "Seq Scan" not in generic, generic
    assert "Index Scan" in custom and "Seq Scan" not in custom, custom
    # The statistics hold as the table grows tenfold without another ANALYZE.
    with admin.transaction():
        admin.execute(f"INSERT INTO {table} (key) SELECT 'item:' || g FROM generate_series(1, 20000) g")
    generic, custom = _generic_plan(admin, table, tid + 20000)
    assert "Seq Scan" not in generic and "Seq Scan" not in custom, (generic, custom)
    # And the poll still reads what was written.
    t = _write(admin, feed, 1)
    poll = feed.poll(admin, tid + 20000)
    assert poll.complete and poll.tid == t and poll.changes == [(t, "item:0")]


def _session_plan(conn, feed, after):
    """Return the plan this session runs its prepared poll with (psycopg's prepared statement)."""
    name = conn.execute("SELECT name FROM pg_prepared_statements WHERE statement LIKE %s",
                        (f"%FROM {feed.table} WHERE tid >=%",)).fetchone()[0]
    return "\n".join(r[0] for r in conn.execute(f"EXPLAIN EXECUTE {name}({after})"))


def test_a_prepared_poll_planned_on_a_small_table_uses_the_index_once_the_table_grew(pg, postgres_dsn):
    """A session that prepared its poll while the table was small (a sequential scan is the
    cheapest plan for a page or two) reads the index once writers have grown the table,
    without the server's autovacuum."""
    import psycopg

    _, admin, table = pg
    writer = SqlFeed(dialect="postgresql", table=table)
    tid = 0
    for _ in range(20):
        tid = _write(admin, writer, 5)
    reader = psycopg.connect(postgres_dsn, autocommit=True, prepare_threshold=0)
    try:
        feed = SqlFeed(dialect="postgresql", table=table, prepare=True)
        for _ in range(8):  # past the five custom plans: the session now keeps a generic plan
            assert feed.poll(reader, tid).complete
        small = _session_plan(reader, feed, tid)
        for _ in range(1500):
            tid = _write(admin, writer, 5)
        poll = feed.poll(reader, tid)
        assert poll.complete and poll.tid == tid
        grown = _session_plan(reader, feed, tid)
        assert f"Seq Scan on {table} " not in grown, f"small table:\n{small}\n\ngrown to 7,600 rows:\n{grown}"
        assert "Index Scan" in grown
    finally:
        reader.close()


def test_without_statistics_the_poll_would_scan_the_table(pg):
    """What the check prevents: the same table, written without the feed, has no statistics
    and both plans scan it (guards the test above)."""
    feed, admin, table = pg
    with admin.transaction():
        admin.execute(f"INSERT INTO {table} (key) SELECT 'item:' || g FROM generate_series(1, 2000) g")
    assert not _has_statistics(admin, table)
    generic, custom = _generic_plan(admin, table, 2000)
    assert "Seq Scan" in generic and "Seq Scan" in custom


def test_a_small_table_is_not_analyzed_and_the_check_is_cheap(pg):
    feed, admin, table = pg
    from cachedeps.feed import STATS_EVERY, STATS_MIN_ROWS

    statements = []
    conn = _Conn(admin, lambda sql: statements.append(sql) or sql)
    # tids from 16 * STATS_EVERY - 20 on: the appends cross one multiple of STATS_EVERY,
    # 20 rows into the table (fewer than STATS_MIN_ROWS).
    admin.execute("SELECT setval(pg_get_serial_sequence(%s, 'tid'), %s)", (table, 16 * STATS_EVERY - 21))
    for _ in range(STATS_EVERY):
        with admin.transaction():
            feed.append(conn, ["item:1"])
    assert 20 < STATS_MIN_ROWS
    assert not _has_statistics(admin, table)
    assert not any(s.startswith("ANALYZE") for s in statements)
    checks = [s for s in statements if "pg_stats" in s]
    assert len(checks) == 1  # once per STATS_EVERY tids, not once per append


def test_a_failed_analyze_is_undone_and_the_write_commits(pg, caplog):
    from cachedeps.feed import STATS_EVERY

    feed, admin, table = pg
    with admin.transaction():
        admin.execute(f"INSERT INTO {table} (key) SELECT 'item:' || g FROM generate_series(1, {STATS_EVERY * 2 - 2}) g")

    failing = _Conn(admin, lambda sql: f"ANALYZE {table}_missing" if sql.startswith("ANALYZE") else sql)
    with caplog.at_level("WARNING", logger="cachedeps.feed"):
        with admin.transaction():
            tid = feed.append(failing, ["item:x", "item:y", "item:z"])
    assert "ANALYZE of the change feed table" in caplog.text
    assert admin.execute(f"SELECT key FROM {table} WHERE tid = %s", (tid,)).fetchone()[0] == "item:z"
