"""Dependency keys from statements and write detection from SQL, without a database."""

from __future__ import annotations

from sqlalchemy import bindparam, func, insert, null, or_, select, text, update
from sqlalchemy.orm import aliased

from sqla_cachedeps.analysis import read_keys, written_tables

from .models import Author, Book, book_tag


def test_equality_on_a_keyable_constant_gives_a_field_key():
    assert read_keys(select(Book).where(Book.author_id == 7)) == ["sq_book.author_id=7"]
    assert read_keys(select(Book).where(7 == Book.author_id)) == ["sq_book.author_id=7"]
    assert read_keys(select(Author).where(Author.active.is_(True))) == ["sq_author"]
    assert read_keys(select(Author).where(Author.active == True)) == ["sq_author.active=1"]  # noqa: E712
    assert read_keys(select(Book).where(Book.author_id == null())) == ["sq_book.author_id=null"]
    assert read_keys(select(Book).where(Book.author_id.is_(None))) == ["sq_book.author_id=null"]


def test_conjunction_picks_one_equality_per_table():
    keys = read_keys(select(Book).where(Book.pages > 3, Book.title == "x", Book.author_id == 1))
    assert keys == ["sq_book.title=x"]


def test_no_usable_equality_gives_the_table_key():
    assert read_keys(select(Book)) == ["sq_book"]
    assert read_keys(select(Book).where(or_(Book.id == 1, Book.id == 2))) == ["sq_book"]
    assert read_keys(select(Book).where(Book.pages.in_([1, 2]))) == ["sq_book"]
    assert read_keys(select(Book).where(Book.title == func.lower("X"))) == ["sq_book"]
    import datetime

    # A date compared with a text column is bound as its text on SQLite: the database
    # compares text, so the key is spelled from that text, as a write of the row spells it.
    assert read_keys(select(Book).where(Book.title == datetime.date(2024, 1, 1))) == ["sq_book.title=2024-01-01"]
    assert read_keys(select(Book).where(Book.pages == 1.5)) == ["sq_book"]  # a float: no exact spelling


def test_bind_values_come_from_parameters():
    stmt = select(Book).where(Book.author_id == bindparam("a"))
    assert read_keys(stmt, {"a": 3}) == ["sq_book.author_id=3"]
    assert read_keys(stmt) == ["sq_book"]


def test_joins_constrain_each_table_separately():
    stmt = select(Book).join(Book.author).where(Author.name == "Ann")
    assert sorted(read_keys(stmt)) == ["sq_author.name=Ann", "sq_book"]


def test_tables_in_subqueries_and_aliases_are_unconstrained():
    sub = select(Book.author_id).where(Book.pages > 10)
    stmt = select(Author).where(Author.id.in_(sub), Author.name == "Ann")
    assert sorted(read_keys(stmt)) == ["sq_author.name=Ann", "sq_book"]
    other = aliased(Book)
    stmt = select(Book).join(other, other.author_id == Book.author_id).where(Book.id == 1)
    assert read_keys(stmt) == ["sq_book"]
    stmt = select(book_tag.c.book_id).where(book_tag.c.tag_id == 4)
    assert read_keys(stmt) == ["sq_book_tag.tag_id=4"]


def test_textual_sql_is_not_analysed():
    from sqlalchemy import literal_column

    assert read_keys(select(Book).where(text("id = 1"))) is None
    assert read_keys(select(Book).where(literal_column("id IN (SELECT book_id FROM sq_review)"))) is None
    assert read_keys(select(func.count()).select_from(Book)) == ["sq_book"]  # count(*) is fine
    assert read_keys(select(Book).from_statement(text("SELECT * FROM sq_book"))) is None
    assert read_keys(update(Book).values(title="x")) is None


def test_written_tables_from_constructs_and_sql():
    assert written_tables(update(Book).values(title="x"), "UPDATE sq_book SET title=?", "sqlite") == ["sq_book"]
    assert written_tables(insert(book_tag), "INSERT INTO sq_book_tag ...", "sqlite") == ["sq_book_tag"]
    assert written_tables(select(Book), "SELECT 1", "sqlite") is None
    assert written_tables(None, 'update "sq_book" set x = 1', "postgresql") == ["sq_book"]
    assert written_tables(None, "  DELETE FROM public.sq_book WHERE id = 1", "postgresql") == ["sq_book"]
    assert written_tables(None, "INSERT OR REPLACE INTO sq_tag VALUES (1)", "sqlite") == ["sq_tag"]
    assert written_tables(None, "TRUNCATE sq_book", "postgresql") == ["sq_book"]
    assert written_tables(None, "/* x */ UPDATE SQ_BOOK SET x = 1", "sqlite") == ["sq_book"]
    # DDL names its tables, mapped or not: a Core table dropped and created again loses its
    # cached reads (test_raw_sql.test_unmapped_table_dropped_and_created_again)
    assert written_tables(None, "CREATE TABLE x (id int)", "sqlite") == ["x"]
    assert written_tables(None, "DROP TABLE unmapped", "sqlite") == ["unmapped"]
    assert written_tables(None, "select * from sq_book", "sqlite") is None
    assert "sq_book" in written_tables(None, "CALL p()", "postgresql")
    assert written_tables(None, "UPDATE unmapped SET x = 1", "sqlite") == ["unmapped"]


def test_loader_criteria_tables_are_dependencies():
    from sqlalchemy.orm import with_loader_criteria

    from .models import Review

    stmt = select(Book).where(Book.author_id == 1).options(
        with_loader_criteria(Book, lambda cls: cls.id.in_(select(Review.book_id)))
    )
    assert sorted(read_keys(stmt)) == ["sq_book.author_id=1", "sq_review"]
