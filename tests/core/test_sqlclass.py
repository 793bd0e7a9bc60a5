"""The raw-SQL classifier: reads proved, writes and DDL named, the rest counted as every table."""

from __future__ import annotations

import logging

import pytest

from cachedeps import sqlclass
from cachedeps.sqlclass import TableName, classify


def names(c):
    return [(t.name, t.quoted) for t in c.tables]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mysql"])
@pytest.mark.parametrize("sql", [
    "SELECT * FROM item WHERE id = %s",
    "select a from item where id = ? for update",
    "  SELECT 'a;b' FROM item",
    "WITH x AS (SELECT 1) SELECT * FROM x",
    "(SELECT 1) UNION (SELECT 2)",
    "SELECT 1; SELECT 2",
    "SAVEPOINT s1",
    "RELEASE SAVEPOINT s1",
    "ROLLBACK TO SAVEPOINT s1",
    "BEGIN",
    "BEGIN TRANSACTION",
    "COMMIT",
    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    "SHOW tables",
    "EXPLAIN SELECT * FROM item",
    "EXPLAIN UPDATE item SET a = 1",
    "PRAGMA foreign_keys = OFF",
    "VACUUM",
    "LOCK TABLE item",
    "",
    " ; ",
])
def test_provable_reads(sql, dialect):
    assert classify(sql, dialect).is_read
    assert classify(sql, dialect).written(["item"]) == []


@pytest.mark.parametrize("sql", [
    "/* tag */ UPDATE item SET a = 1",
    "-- x\nUPDATE item SET a = 1",
    "/* a */ -- b\n  /* c */ DELETE FROM item",
    "SET LOCAL statement_timeout = 0; UPDATE item SET a = 1",
    "SELECT 1; INSERT INTO item (a) VALUES (%s)",
    "WITH d AS (DELETE FROM item WHERE id = 1 RETURNING *) SELECT * FROM d",
    "WITH u AS (UPDATE item SET a = 1 RETURNING id) SELECT count(*) FROM u",
    "EXPLAIN ANALYZE UPDATE item SET a = 1",
    "EXPLAIN (ANALYZE, BUFFERS) DELETE FROM item",
    "INSERT INTO item (a) SELECT x FROM other ON CONFLICT (a) DO UPDATE SET a = 1",
    "UPDATE item SET a = 1 FROM other WHERE other.id = item.id",
    "MERGE INTO item USING other ON item.id = other.id WHEN MATCHED THEN UPDATE SET a = 1 "
    "WHEN NOT MATCHED THEN INSERT (a) VALUES (1)",
    "COPY item FROM STDIN",
    "COPY item (a, b) FROM STDIN",
    "UPDATE item SET a = %(a)s WHERE id = %(id)s",
    "DELETE FROM ONLY public.item",
])
def test_writes_name_their_target_postgres(sql):
    c = classify(sql, "postgresql")
    assert c.kind == "write", c
    assert names(c) == [("item", False)]
    assert c.written(["item", "other", "Item"]) == ["item"]


@pytest.mark.parametrize("dialect", ["sqlite", "mysql"])
@pytest.mark.parametrize("sql", [
    "/* tag */ UPDATE item SET a = %s",
    "-- x\nupdate item set a = ?",
    "REPLACE INTO item VALUES (1)",
    "INSERT OR REPLACE INTO item VALUES (%(a)s)",
    "SELECT 1; DELETE FROM item WHERE id = %s",
])
def test_writes_name_their_target_sqlite_mysql(sql, dialect):
    if dialect == "mysql" and "OR REPLACE" in sql:
        pytest.skip("SQLite syntax")
    c = classify(sql, dialect)
    assert c.kind == "write", c
    assert c.written(["item", "other"]) == ["item"]


@pytest.mark.parametrize("sql", [
    "UPDATE LOW_PRIORITY item SET a = 1",  # sqlglot alone reads LOW_PRIORITY as the table
    "UPDATE LOW_PRIORITY IGNORE item SET a = 1",
    "DELETE LOW_PRIORITY QUICK IGNORE FROM item WHERE id = 1",
    "INSERT HIGH_PRIORITY IGNORE INTO item VALUES (1)",
    "INSERT DELAYED INTO item VALUES (1)",
    "REPLACE LOW_PRIORITY INTO item VALUES (1)",
])
def test_mysql_modifiers_are_not_table_names(sql):
    c = classify(sql, "mysql")
    assert c.kind == "write" and c.written(["item", "low_priority", "quick"]) == ["item"], c


def test_multi_table_writes_name_every_target():
    c = classify("UPDATE a JOIN b ON a.id = b.id SET a.x = 1, b.y = 2", "mysql")
    assert c.written(["a", "b", "c"]) == ["a", "b"]
    c = classify("DELETE t1, t2 FROM t1 JOIN t2 ON t1.id = t2.id", "mysql")
    assert c.written(["t1", "t2", "t3"]) == ["t1", "t2"]
    c = classify("UPDATE a SET x = 1; DELETE FROM b; SELECT * FROM c", "sqlite")
    assert c.written(["a", "b", "c"]) == ["a", "b"]


@pytest.mark.parametrize("sql, tables", [
    ("DROP TABLE item", ["item"]),
    ("DROP TABLE IF EXISTS item, other", ["item", "other"]),
    ("ALTER TABLE item ADD COLUMN x int", ["item"]),
    ("ALTER TABLE item RENAME TO item2", ["item", "item2"]),
    ("TRUNCATE item, public.other", ["item", "other"]),
    ("TRUNCATE TABLE item RESTART IDENTITY", ["item"]),
    ("CREATE INDEX ix ON item (a)", ["item"]),
    ("CREATE UNIQUE INDEX ix ON public.item (a)", ["item"]),
    ("CREATE TABLE item (id int)", ["item"]),
    ("SELECT * INTO item FROM other", ["item"]),
])
def test_ddl_names_its_tables(sql, tables):
    c = classify(sql, "postgresql")
    assert c.kind == "ddl", c
    assert c.written(["item", "item2", "other", "unrelated"]) == tables
    assert not c.autocommit_only


def test_statements_outside_a_transaction_block_are_flagged():
    c = classify("CREATE INDEX CONCURRENTLY ix ON item (a)", "postgresql")
    assert c.kind == "ddl" and c.autocommit_only and c.written(["item"]) == ["item"]


@pytest.mark.parametrize("dialect, sql", [
    ("postgresql", "CALL refresh_items()"),
    ("postgresql", "DO $$ BEGIN UPDATE item SET a = 1; END $$"),
    ("postgresql", "EXECUTE prepared_update"),
    ("postgresql", "REFRESH MATERIALIZED VIEW item_view"),
    ("postgresql", "SELECT 1; CALL p()"),
    ("postgresql", "TRUNCATE item RESTART IDENTITY CASCADE"),
    ("postgresql", "DROP SCHEMA app CASCADE"),
    ("postgresql", "DROP TYPE mood CASCADE"),
    ("postgresql", "ALTER TYPE mood RENAME VALUE 'sad' TO 'blue'"),
    ("oracle", "BEGIN UPDATE item SET a = 1; END;"),
    ("tsql", "DECLARE @n int; UPDATE item SET a = 1"),
    ("mysql", "LOAD DATA INFILE '/tmp/x' INTO TABLE item"),
    ("sqlite", "CREATE TRIGGER t AFTER INSERT ON other BEGIN UPDATE item SET a = 1; END"),
    ("postgresql", "UPDATE item SET a = 'unterminated"),
    ("mysql", "THIS IS NOT SQL"),
])
def test_unknown_statements_write_every_table(dialect, sql, caplog):
    sqlclass._warned.clear()
    with caplog.at_level(logging.WARNING, logger="cachedeps.sqlclass"):
        c = classify(sql, dialect)
        classify(sql + " ", dialect)  # the same shape: not logged again
    assert c.kind == "unknown" and c.every_table
    assert c.written(["item", "other"]) == ["item", "other"]
    warnings = [r for r in caplog.records if r.name == "cachedeps.sqlclass"]
    assert len(warnings) == 1 and "every cached table" in warnings[0].getMessage()


def test_sqlite_names_match_without_regard_to_case_quoted_or_not():
    for sql in ("UPDATE Item SET a = 1", 'UPDATE "ITEM" SET a = 1', "UPDATE [iTeM] SET a = 1",
                "update `item` set a = 1"):
        assert classify(sql, "sqlite").written(["item", "other"]) == ["item"], sql
    # Several cached spellings that SQLite would take for one table: all of them count.
    assert classify("DELETE FROM item", "sqlite").written(["Item", "ITEM", "x"]) == ["Item", "ITEM"]


def test_postgres_folds_unquoted_names_and_keeps_quoted_ones():
    assert classify("UPDATE Item SET a = 1", "postgresql").written(["item", "Item"]) == ["item"]
    assert classify('UPDATE "Item" SET a = 1', "postgresql").written(["item", "Item"]) == ["Item"]
    assert classify('UPDATE "item" SET a = 1', "postgresql").written(["item", "Item"]) == ["item"]
    assert classify("UPDATE public.ITEM SET a = 1", "postgresql").spellings() == ["item"]
    assert classify('UPDATE other_schema."Item" SET a = 1', "postgresql").tables == (TableName("Item", True),)


def test_mysql_names_match_without_regard_to_case():
    assert classify("UPDATE `Item` SET a = 1", "mysql").written(["item", "ITEM", "x"]) == ["item", "ITEM"]
    assert classify("UPDATE db.ITEM SET a = 1", "mariadb").written(["item"]) == ["item"]


def test_verdicts_are_memoized_and_bounded():
    sql = "/* memo */ UPDATE item SET a = 1"
    first = classify(sql, "sqlite")
    assert classify(sql, "sqlite") is first
    info = sqlclass._memo.cache_info()
    assert info.maxsize == sqlclass.MEMO_SIZE
    long = "UPDATE item SET a = 1 WHERE id IN (" + ",".join(["1"] * 5000) + ")"
    assert len(long) > sqlclass.MEMO_MAX_CHARS
    assert classify(long, "sqlite").written(["item"]) == ["item"]


def test_dialect_names():
    assert sqlclass.dialect_of("postgresql") == "postgres"
    assert sqlclass.dialect_of("mariadb") == "mysql"
    assert sqlclass.dialect_of("sqlite") == "sqlite"
    # An unknown dialect parses with sqlglot's generic one and matches without regard to case.
    assert classify("UPDATE Item SET a = 1", "somedb").written(["item"]) == ["item"]


def test_a_statement_without_text_writes_every_table():
    c = sqlclass.unknown_statement("postgresql", "<Composed ...>")
    assert c.every_table and c.written(["a", "b"]) == ["a", "b"]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mysql"])
def test_written_matches_each_named_table_as_the_dialect_compares_names(dialect):
    # every candidate spelling against every way a statement may name it: written() gives
    # exactly the candidates the dialect's name comparison (_same_table) matches, in their order
    candidates = ["item", "Item", "ITEM", "ïtem", "Ïtem", "other", "straße", "STRASSE", "Straße"]
    named = ["item", "ITEM", '"Item"', "Ïtem", '"ïtem"', "straße", '"STRASSE"', "nothing"]
    for name in named:
        c = classify(f"DELETE FROM {name}", dialect)
        assert c.kind == "write", c
        ref = c.tables[0]
        expected = [t for t in candidates if sqlclass._same_table(c.dialect, ref, t)]
        assert c.written(candidates) == expected, (dialect, name)
        assert sorted(c.written(frozenset(candidates))) == sorted(expected), (dialect, name)


def test_written_does_not_compare_each_statement_with_every_table():
    # A flush deletes from every table of the schema, one statement each: with thousands of
    # cached tables, matching each statement against every table took seconds per flush
    # (statements x tables comparisons). The tables are indexed once.
    import time

    tables = frozenset(f"app_model_{i}" for i in range(5000))
    statements = [classify(f"DELETE FROM app_model_{i}", "sqlite") for i in range(0, 5000, 2)]
    started = time.perf_counter()
    for i, c in zip(range(0, 5000, 2), statements):
        assert c.written(tables) == [f"app_model_{i}"]
    assert time.perf_counter() - started < 2.0
