"""Raw, textual and parametrized statements invalidate what they may write (issue 9, breaks
6, 7 and 8). Each test caches the reads of ``test_writes.snapshot``, writes, and requires the
reads to see the database's answer."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, delete, select, text, update

from .models import Book, Review
from .test_writes import by_author, check, snapshot, truth


def postgres_only(app):
    if app.engine.dialect.name != "postgresql":
        pytest.skip("sqlite3 runs one statement per execute and has no data-modifying CTEs")


@pytest.fixture(params=["same", "other"])
def writer(request, app, make_app):
    return app if request.param == "same" else make_app()


def raw(sql, params=None):
    def write(w):
        with w.Session.begin() as s:
            s.execute(text(sql), params or {})
    return write


# -- break 6 ---------------------------------------------------------------------------------


def _case_sensitive_names(app):
    if app.engine.dialect.name == "mysql":
        pytest.skip("table names are case-sensitive on MySQL/MariaDB on Linux (lower_case_table_names=0)")


def test_table_named_in_upper_case(app, writer):
    _case_sensitive_names(app)
    check(app, writer, raw("UPDATE SQ_BOOK SET author_id = 2, title = 'raw' WHERE id = 1"))


def test_table_named_in_upper_case_on_a_plain_connection(app, writer):
    _case_sensitive_names(app)
    def write(w):
        with w.engine.begin() as conn:
            conn.execute(text("DELETE FROM Sq_Book WHERE id = :id"), {"id": 3})
    check(app, writer, write)


# -- break 7 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/* tag */ ", "-- x\n", "/* a */\n-- b\n "])
def test_statement_starting_with_a_comment(app, writer, prefix):
    check(app, writer, raw(prefix + "UPDATE sq_book SET author_id = 2, title = 'raw' WHERE id = 1"))


def test_comment_then_write_is_seen_by_the_same_transaction(app, writer):
    def write(w):
        with w.Session.begin() as s:
            s.execute(text("/* tag */ UPDATE sq_book SET author_id = 2 WHERE id = 2"))
            assert [b.id for b in s.scalars(by_author(2))] == [2, 3]
    check(app, writer, write)


def test_several_statements_in_one_execute(app, writer):
    postgres_only(app)

    def write(w):
        with w.engine.begin() as conn:
            conn.exec_driver_sql(
                "SET LOCAL statement_timeout = 0; UPDATE sq_book SET author_id = 2, title = 'raw' WHERE id = 1"
            )
    check(app, writer, write)


def test_data_modifying_cte_ending_in_a_select(app, writer):
    postgres_only(app)

    def write(w):
        with w.Session.begin() as s:
            n = s.execute(text(
                "WITH u AS (UPDATE sq_book SET author_id = 2, title = 'raw' WHERE id = 1 RETURNING id) "
                "SELECT count(*) FROM u"
            )).scalar()
            assert n == 1
    check(app, writer, write)


def test_data_modifying_core_cte(app, writer):
    postgres_only(app)

    def write(w):
        with w.Session.begin() as s:
            moved = update(Book).where(Book.id == 1).values(author_id=2, title="cte").returning(Book.id).cte("moved")
            assert s.execute(select(moved.c.id).execution_options(cachedeps=False)).scalars().all() == [1]
    check(app, writer, write)


def test_truncate(app, writer):
    postgres_only(app)

    def write(w):
        with w.engine.begin() as conn:
            conn.execute(text("TRUNCATE sq_book_tag, sq_review, sq_book"))
    check(app, writer, write)


def test_drop_and_recreate_a_table(app, writer):
    def write(w):
        with w.engine.begin() as conn:
            conn.execute(text("CREATE TABLE sq_book_copy AS SELECT * FROM sq_book WHERE id <> 1"))
        with w.engine.begin() as conn:
            conn.execute(text("DROP TABLE sq_book_tag"))
            conn.execute(text("DROP TABLE sq_review"))
            conn.execute(text("DROP TABLE sq_book"))
            conn.execute(text("ALTER TABLE sq_book_copy RENAME TO sq_book"))
    check(app, writer, write)


def test_unmapped_table_dropped_and_created_again(app):
    """A Core table no class maps: DROP TABLE and CREATE TABLE (DDL constructs run on the
    engine) drop the reads cached over it, as its INSERTs do."""
    from sqlalchemy import Column, Integer, MetaData, Table, func

    table = Table("sq_unmapped_ddl", MetaData(), Column("data", Integer))
    count = select(func.count()).select_from(table).execution_options(cachedeps=True)
    table.create(app.engine)
    with app.Session.begin() as s:
        s.execute(table.insert(), {"data": 1})
    for _ in range(2):
        with app.Session() as s:
            assert s.scalar(count) == 1  # a miss, then a hit (verified)
    table.drop(app.engine)
    table.create(app.engine)
    with app.Session() as s:
        assert s.scalar(count) == 0
    table.drop(app.engine)


@pytest.mark.parametrize("ddl", [
    "CREATE INDEX sq_book_title_raw ON sq_book (title)",
    "ALTER TABLE sq_book ADD COLUMN extra integer",
])
def test_ddl_marks_the_transaction_written_and_drops_the_table_entries(app, ddl):
    snapshot(app)
    with app.Session.begin() as s:
        s.execute(text(ddl))
        app.selects.clear()
        [b.id for b in s.scalars(by_author(1))]
        assert app.selects, "a read after DDL in the same transaction must not use the cache"
    app.selects.clear()
    assert snapshot(app) == truth(app)
    assert app.selects, "DDL on a table must drop its cached entries"


# -- break 8 ---------------------------------------------------------------------------------


def test_orm_update_with_a_required_bindparam_and_parameters(app, writer):
    def write(w):
        with w.Session.begin() as s:
            s.execute(update(Book).where(Book.id == bindparam("n")).values(author_id=2, title="u"), {"n": 1})
    check(app, writer, write)


def test_orm_update_with_a_bindparam_default_and_other_parameters(app, writer):
    def write(w):
        with w.Session.begin() as s:
            s.execute(update(Book).where(Book.id == bindparam("n", 99)).values(author_id=2, title="u"), {"n": 1})
    check(app, writer, write)


def test_orm_update_with_a_parameter_list(app, writer):
    def write(w):
        with w.Session.begin() as s:
            s.execute(
                update(Book).where(Book.id == bindparam("n")),
                [{"id": 1, "n": 1, "author_id": 2, "title": "u"}, {"id": 3, "n": 3, "author_id": 1}],
                execution_options={"synchronize_session": None},
            )
    check(app, writer, write)


def test_orm_update_setting_values_from_the_parameters(app, writer):
    def write(w):
        with w.Session.begin() as s:
            s.execute(update(Book).where(Book.id == bindparam("n")), {"n": 1, "author_id": 2, "title": "p"})
    check(app, writer, write)


def test_orm_update_missing_a_parameter_raises_sqlalchemys_own_error(app):
    from sqlalchemy.exc import StatementError

    with app.Session() as s:
        with pytest.raises(StatementError, match="A value is required for bind parameter 'n'"):
            s.execute(update(Book).where(Book.id == bindparam("n")).values(title="x"))
        s.rollback()
    assert snapshot(app) == truth(app)


def test_orm_delete_with_a_required_bindparam_and_parameters(app, writer):
    def write(w):
        with w.Session.begin() as s:
            s.execute(delete(Review))
            s.execute(delete(Book).where(Book.id == bindparam("n")), {"n": 3})
    check(app, writer, write)


def test_orm_bulk_update_by_primary_key_keeps_untouched_reads_cached(app, writer):
    with app.Session.begin() as s:
        s.add(Book(id=4, title="B2", author_id=2, pages=40))
    with app.Session() as s:
        s.scalars(by_author(1)).all()
        s.scalars(by_author(2)).all()
    with writer.Session.begin() as s:
        s.execute(update(Book), [{"id": 3, "title": "bulk"}, {"id": 4, "title": "bulk4"}])
    app.selects.clear()
    with app.Session() as s:
        assert [b.title for b in s.scalars(by_author(1))] == ["A1", "A2"]
        assert app.selects == []  # author 1's books were not touched: still cached
        assert [b.title for b in s.scalars(by_author(2))] == ["bulk", "bulk4"]
    assert snapshot(app) == truth(app)
