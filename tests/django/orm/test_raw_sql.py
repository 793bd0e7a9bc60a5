"""Raw SQL through Django cursors: every statement not proved a read invalidates what it may
write (issue 9, breaks 6 and 7). Each test caches a read, runs raw SQL, and requires the
read to see the database's answer."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from django.db import connection, transaction

from django_cachedeps.db.hints import own_statements
from tests.django.conftest import DbQueries
from tests.django.orm._support import check, fresh, seed, served_from_cache
from tests.django.testapp.models import Book, Tag

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def data(engine):
    return seed()


def raw(sql: str, params: Any = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)



def title_111() -> list[str]:
    return list(Book.objects.filter(isbn="111").values_list("title", flat=True))


def postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's: SQLite's driver and mysqlclient (as Django opens it) run one statement "
                    "per execute, and have no data-modifying CTEs")


# -- break 6: the table named in another case ------------------------------------------------


def test_table_named_in_upper_case(data):
    if connection.vendor == "mysql":
        pytest.skip("table names are case-sensitive on MySQL/MariaDB on Linux (lower_case_table_names=0)")
    check(title_111, lambda: raw("UPDATE BOOK SET title = %s WHERE isbn = %s", ["Raw", "111"]), ["Raw"])


def test_table_named_in_mixed_case_quoted_on_sqlite(data):
    if connection.vendor != "sqlite":
        pytest.skip("a quoted name keeps its case on PostgreSQL: another table")
    check(title_111, lambda: raw('UPDATE "Book" SET "title" = %s WHERE "isbn" = %s', ["Raw", "111"]), ["Raw"])


# -- break 7: statements not seen as writes --------------------------------------------------


@pytest.mark.parametrize("prefix", ["/* tag */ ", "-- x\n", "/* a */ -- b\n   "])
def test_statement_starting_with_a_comment(data, prefix):
    check(title_111, lambda: raw(prefix + "UPDATE book SET title = %s WHERE isbn = %s", ["Raw", "111"]), ["Raw"])


def test_comment_before_insert(data):
    ann_pk = data["ann"].pk
    check(lambda: Book.objects.filter(author_id=ann_pk).count(),
          lambda: raw("/* seed */ INSERT INTO book (author_id, title, isbn, pages) VALUES (%s, 'R', 'r', 1)",
                      [ann_pk]), 3)


def test_several_statements_in_one_execute(data):
    postgres_only()
    check(title_111, lambda: raw("SET LOCAL statement_timeout = 0; UPDATE book SET title = 'Raw' WHERE isbn = '111'"),
          ["Raw"])


def test_data_modifying_cte_ending_in_a_select(data):
    postgres_only()

    def write():
        with connection.cursor() as cursor:
            cursor.execute("WITH u AS (UPDATE book SET title = %s WHERE isbn = %s RETURNING id) "
                           "SELECT count(*) FROM u", ["Raw", "111"])
            assert cursor.fetchone() == (1,)

    check(title_111, write, ["Raw"])


def test_truncate_after_a_comment(data):
    postgres_only()
    red = data["red"]
    check(lambda: red.books.count(), lambda: raw("/* reset */ TRUNCATE book_tags"), 0)


def test_drop_table_drops_its_entries(data):
    red = data["red"]

    def write():
        raw("DROP TABLE book_tags")
        with own_statements(), connection.schema_editor() as editor:  # recreated empty, untracked
            editor.create_model(Tag.books.through)

    check(lambda: red.books.count(), write, 0)


def _hits_database(read: Callable[[], Any]) -> bool:
    with DbQueries(connection) as q:
        read()
    return bool(q.data)


@pytest.mark.parametrize("ddl, undo", [
    ("CREATE INDEX book_title_raw ON book (title)", "DROP INDEX book_title_raw"),
    ("ALTER TABLE book ADD COLUMN extra integer", "ALTER TABLE book DROP COLUMN extra"),
])
def test_ddl_marks_the_transaction_written_and_drops_the_table_entries(data, ddl, undo):
    if connection.vendor == "mysql" and undo.startswith("DROP INDEX"):
        undo += " ON book"
    read = title_111
    served_from_cache(read)
    try:
        with transaction.atomic():
            raw(ddl)
            assert _hits_database(read), "a read after DDL in the same transaction must not use the cache"
        assert _hits_database(read), "DDL on a table must drop its cached entries"
    finally:
        with own_statements():
            raw(undo)


def test_statement_refused_in_a_transaction_block_runs_and_invalidates(data):
    postgres_only()
    served_from_cache(title_111)
    try:
        raw("CREATE INDEX CONCURRENTLY book_title_cc ON book (title)")  # autocommit: PostgreSQL accepts it
        assert _hits_database(title_111), "DDL on a table must drop its cached entries"
    finally:
        raw("DROP INDEX CONCURRENTLY IF EXISTS book_title_cc")


def test_statement_composed_by_the_driver(data):
    postgres_only()
    from psycopg import sql

    stmt = sql.SQL("/* composed */ UPDATE {} SET {} = %s WHERE isbn = %s").format(
        sql.Identifier("book"), sql.Identifier("title"))
    check(title_111, lambda: raw(stmt, ["Raw", "111"]), ["Raw"])


def test_mysql_ddl_commits_the_transaction_with_its_keys(data):
    """MySQL commits the open transaction before a DDL statement: the keys written before it
    must commit with it, and the DDL's own keys right after, whatever the block does next."""
    if connection.vendor != "mysql":
        pytest.skip("an implicit COMMIT before DDL is MySQL's/MariaDB's")
    pk = data["b1"].pk
    served_from_cache(title_111)
    served_from_cache(lambda: Book.objects.get(pk=pk).title)
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            Book.objects.filter(pk=pk).update(title="Kept")  # committed by the ALTER below
            raw("CREATE TABLE cachedeps_scratch (id integer)")
            raise RuntimeError("the block fails after the DDL")
    try:
        assert Book.objects.get(pk=pk).title == "Kept"
        assert title_111() == ["Kept"]
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                raw("TRUNCATE TABLE book_tags")
                raise RuntimeError("the block fails after the TRUNCATE")
        assert [sorted(t.name for t in b.tags.all()) for b in Book.objects.order_by("pk")] == [[], [], []]
    finally:
        with own_statements():
            raw("DROP TABLE IF EXISTS cachedeps_scratch")
