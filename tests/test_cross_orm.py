"""One world: Django and SQLAlchemy on one database invalidate each other's caches.

Both adapters spell dependency keys with :mod:`cachedeps.keys` (table ``book``, oid
``book:7``, field key ``book.author_id=3``) and write the same change feed table, so a
write through either ORM reaches the other's cached gets and queries. The test runs on the
database Django's test settings use (SQLite by default; PostgreSQL with
``CACHEDEPS_TEST_DB=postgresql``, which the last test arranges in a subprocess).
"""

from __future__ import annotations

import datetime
import os
import sqlite3
import subprocess
import sys
import uuid
from typing import Any, Iterator

import pytest
import enum

from sqlalchemy import (
    JSON, BigInteger, Column, Date, Enum, ForeignKey, MetaData, String, Table, Uuid, create_engine, event, select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, registry, sessionmaker

import cachedeps
import sqla_cachedeps
from sqla_cachedeps import FromCache
from sqla_cachedeps.feed import feed_for_dialect
from tests.conftest import require

pytestmark = pytest.mark.django_db(transaction=True)


class _Base(DeclarativeBase):
    pass


class SaAuthor(_Base):
    """Django's ``testapp.Author`` table, mapped by SQLAlchemy."""

    __tablename__ = "author"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool]


class SaBook(_Base):
    """Django's ``testapp.Book`` table, mapped by SQLAlchemy."""

    __tablename__ = "book"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("author.id"))
    title: Mapped[str] = mapped_column(String(200))
    isbn: Mapped[str] = mapped_column(String(20))
    pages: Mapped[int]
    published: Mapped[datetime.date | None] = mapped_column(Date)


class Color(enum.Enum):
    RED = 1
    BLUE = 2


class SaSpelled(_Base):
    """Django's ``testapp.Spelled`` table: an ``Enum`` stored by name, JSON, a ``Uuid``."""

    __tablename__ = "spelled"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    color: Mapped[Color] = mapped_column(Enum(Color, native_enum=False, length=10))
    data: Mapped[Any] = mapped_column(JSON)
    uid: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


# The same table with ``uid`` as the 32 hex digits Django stores on SQLite, mapped (a select
# of a table alone is not cached through a Session: SQLAlchemy hands back the cursor's result).
_spelled_text = Table("spelled", MetaData(), Column("id", BigInteger, primary_key=True), Column("uid", String(32)))


class _SpelledText:
    pass


registry().map_imperatively(_SpelledText, _spelled_text)


def _sqlalchemy_engine() -> Any:
    """Return an engine on the very database Django's test connection uses."""
    from django.db import connection

    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        name = settings["NAME"]
        if str(name).startswith("file:"):  # Django's shared in-memory test database
            return create_engine("sqlite://", creator=lambda: sqlite3.connect(name, uri=True, check_same_thread=False))
        return create_engine(f"sqlite:///{name}")
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or "5432"
    return create_engine(f"postgresql+psycopg://{settings['USER']}@{host}:{port}/{settings['NAME']}")


@pytest.fixture
def world() -> Iterator[dict[str, Any]]:
    """Seed rows through Django; return Django's models and an installed SQLAlchemy app."""
    from django_cachedeps import runtime
    from tests.django.testapp.models import Author, Book

    runtime.reset()
    ann = Author.objects.create(name="Ann")
    bob = Author.objects.create(name="Bob")
    b1 = Book.objects.create(author=ann, title="Alpha", isbn="111", pages=100)
    b2 = Book.objects.create(author=ann, title="Beta", isbn="222", pages=200)
    engine = _sqlalchemy_engine()
    selects: list[str] = []
    event.listen(
        engine,
        "before_cursor_execute",
        lambda c, cur, sql, *a: selects.append(sql) if sql.lstrip().upper().startswith("SELECT") else None,
    )
    factory = sessionmaker(engine)
    cache = cachedeps.Cache("embedded://", feed=feed_for_dialect(engine.dialect))
    handle = sqla_cachedeps.install(factory, cache)
    yield {"Author": Author, "Book": Book, "ann": ann, "bob": bob, "b1": b1, "b2": b2,
           "Session": factory, "selects": selects}
    handle.uninstall()
    engine.dispose()
    runtime.reset()


def _django_reads(world: dict[str, Any]) -> tuple[Any, list[int]]:
    Book = world["Book"]
    book = Book.objects.get(pk=world["b1"].pk)
    ids = sorted(Book.objects.filter(author_id=world["ann"].pk).values_list("pk", flat=True))
    return (book.title, book.author_id), ids


def _django_served_from_cache(world: dict[str, Any]) -> Any:
    from django.db import connection

    from tests.django.conftest import DbQueries

    first = _django_reads(world)
    with DbQueries(connection) as q:
        second = _django_reads(world)
    assert q.data == [], f"Django did not serve these reads from its cache: {q.data}"
    assert second == first
    return first


def test_sqlalchemy_write_invalidates_what_django_cached(world):
    b1, ann, bob = world["b1"], world["ann"], world["bob"]
    assert _django_served_from_cache(world) == (("Alpha", ann.pk), [b1.pk, world["b2"].pk])
    with world["Session"].begin() as s:
        book = s.get(SaBook, b1.pk)
        book.title = "Moved"
        book.author_id = bob.pk  # leaves Django's cached `author_id = ann` result
    assert _django_reads(world) == (("Moved", bob.pk), [world["b2"].pk])


def test_sqlalchemy_statement_invalidates_what_django_cached(world):
    from sqlalchemy import update

    _django_served_from_cache(world)
    with world["Session"].begin() as s:
        s.execute(update(SaBook).where(SaBook.id == world["b1"].pk).values(title="Stmt"))
    assert _django_reads(world)[0] == ("Stmt", world["ann"].pk)


def test_django_write_invalidates_what_sqlalchemy_cached(world):
    b1, ann, bob = world["b1"], world["ann"], world["bob"]
    stmt = select(SaBook.id).where(SaBook.author_id == ann.pk).order_by(SaBook.id).options(FromCache())

    def read() -> tuple[Any, list[int]]:
        with world["Session"]() as s:
            book = s.get(SaBook, b1.pk)
            return (book.title, book.author_id), s.scalars(stmt).all()

    assert read() == (("Alpha", ann.pk), [b1.pk, world["b2"].pk])
    world["selects"].clear()
    assert read() == (("Alpha", ann.pk), [b1.pk, world["b2"].pk])
    assert world["selects"] == []  # served from SQLAlchemy's cache

    book = world["Book"].objects.get(pk=b1.pk)
    book.title = "Django"
    book.author = bob
    book.save()
    assert read() == (("Django", bob.pk), [world["b2"].pk])

    world["Book"].objects.filter(pk=world["b2"].pk).update(title="Bulk")
    with world["Session"]() as s:
        assert s.get(SaBook, world["b2"].pk).title == "Bulk"


def test_sqlalchemy_writes_reach_a_django_read_keyed_on_field_changes(world):
    """A Django page depending on field-change keys and its rows' oids, written by SQLAlchemy."""
    from django_cachedeps import nocache

    Book, ann, bob, b1, b2 = world["Book"], world["ann"], world["bob"], world["b1"], world["b2"]

    def page() -> list[tuple[int, str]]:
        return list(Book.objects.filter(author_id=ann.pk).order_by("pages", "id").values_list("id", "title")[:1])

    def check(expected: list[tuple[int, str]]) -> None:
        assert page() == expected
        with nocache():
            assert page() == expected

    assert _django_page_cached(page) == [(b1.pk, "Alpha")]
    with world["Session"].begin() as s:
        s.get(SaBook, b2.pk).isbn = "999"  # a row out of the page, a column out of the query
    assert _django_page_cached(page) == [(b1.pk, "Alpha")]
    with world["Session"].begin() as s:
        s.get(SaBook, b1.pk).title = "Renamed"  # a row in the page
    check([(b1.pk, "Renamed")])
    with world["Session"].begin() as s:
        s.get(SaBook, b2.pk).pages = 1  # the order column of a row out of the page
    check([(b2.pk, "Beta")])
    with world["Session"].begin() as s:
        s.add(SaBook(author_id=ann.pk, title="New", isbn="444", pages=0))
    check([(Book.objects.get(isbn="444").pk, "New")])
    with world["Session"].begin() as s:
        s.get(SaBook, Book.objects.get(isbn="444").pk).author_id = bob.pk
    check([(b2.pk, "Beta")])


def test_sqlalchemy_writes_reach_a_django_read_keyed_on_table_changes(world):
    """A Django page without an equality anchor (``book/pages``, ``book/*`` and its rows' oids)."""
    from django.db import connection

    from django_cachedeps import nocache
    from tests.django.conftest import DbQueries

    Book, ann, b1, b2 = world["Book"], world["ann"], world["b1"], world["b2"]

    def page() -> list[tuple[int, str]]:
        return list(Book.objects.order_by("pages", "id").values_list("id", "title")[:1])

    def check(expected: list[tuple[int, str]]) -> None:
        assert page() == expected
        with nocache():
            assert page() == expected

    assert _django_page_cached(page) == [(b1.pk, "Alpha")]
    with world["Session"].begin() as s:
        s.get(SaBook, b2.pk).title = "Other"  # a row out of the page, a column out of the query
    with DbQueries(connection) as q:
        assert page() == [(b1.pk, "Alpha")]
    assert q.data == [], f"Django did not serve this read from its cache: {q.data}"
    with world["Session"].begin() as s:
        s.get(SaBook, b2.pk).pages = 1  # the order column of a row out of the page
    check([(b2.pk, "Other")])
    with world["Session"].begin() as s:
        s.add(SaBook(author_id=ann.pk, title="New", isbn="444", pages=0))
    check([(Book.objects.get(isbn="444").pk, "New")])


def test_sqlalchemy_enum_write_reaches_a_django_read_of_its_name(world):
    from tests.django.testapp.models import Spelled

    row = Spelled.objects.create(color="BLUE")
    read = lambda: list(Spelled.objects.filter(color="RED").values_list("pk", flat=True))  # noqa: E731
    assert _django_page_cached(read) == []
    with world["Session"].begin() as s:
        s.get(SaSpelled, row.pk).color = Color.RED
    assert read() == [row.pk]


def test_sqlalchemy_json_one_to_true_reaches_a_django_read(world):
    from tests.django.testapp.models import Spelled

    row = Spelled.objects.create(data={"a": 1})
    read = lambda: Spelled.objects.filter(data={"a": True}).count()  # noqa: E731
    assert _django_page_cached(read) == 0
    from sqlalchemy import update

    # (A flush would write nothing: SQLAlchemy compares JSON values with ==.)
    with world["Session"].begin() as s:
        s.execute(update(SaSpelled).where(SaSpelled.id == row.pk).values(data={"a": True}))
    assert read() == 1


def test_django_uuid_write_reaches_a_sqlalchemy_read(world):
    from django.db import connection

    from tests.django.testapp.models import Spelled

    value = uuid.UUID("12345678-1234-5678-1234-567812345678")
    reads = [select(SaSpelled.id).where(SaSpelled.uid == value).options(FromCache())]
    if connection.vendor == "sqlite":
        reads.append(select(_SpelledText.id).where(_SpelledText.uid == value.hex).options(FromCache()))
    for stmt in reads:
        with world["Session"]() as s:
            assert s.execute(stmt).all() == []
    world["selects"].clear()
    for stmt in reads:
        with world["Session"]() as s:
            assert s.execute(stmt).all() == []
    assert world["selects"] == []  # served from SQLAlchemy's cache
    row = Spelled.objects.create(uid=value)
    for stmt in reads:
        with world["Session"]() as s:
            assert [r[0] for r in s.execute(stmt).all()] == [row.pk]


def _django_page_cached(read: Any) -> Any:
    from django.db import connection

    from tests.django.conftest import DbQueries

    first = read()
    with DbQueries(connection) as q:
        second = read()
    assert q.data == [], f"Django did not serve this read from its cache: {q.data}"
    assert second == first
    return first


def test_feed_rows_are_the_keys_django_would_write(world):
    """The SQLAlchemy half on its own: the exact keys of an update, as cachedeps.keys spells them."""
    from cachedeps import keys
    from django.db import connection

    b1, ann, bob = world["b1"], world["ann"], world["bob"]
    with connection.cursor() as cur:
        cur.execute("SELECT MAX(tid) FROM cachedeps_change")
        before = cur.fetchone()[0] or 0
    with world["Session"].begin() as s:
        s.get(SaBook, b1.pk).author_id = bob.pk
    with connection.cursor() as cur:
        cur.execute("SELECT key FROM cachedeps_change WHERE tid > %s", [before])
        written = {row[0] for row in cur.fetchall()}
    old = {"id": b1.pk, "author_id": ann.pk, "title": "Alpha", "isbn": "111", "pages": 100, "published": None}
    new = dict(old, author_id=bob.pk)
    assert written == set(keys.row_keys("book", b1.pk, old, new))
    assert {f"book:{b1.pk}", f"book.author_id={ann.pk}", f"book.author_id={bob.pk}"} <= written


@pytest.mark.postgres
@pytest.mark.django_db(transaction=False)
def test_cross_orm_on_postgresql_in_a_subprocess(postgres_dsn):
    """Run this module again with Django on PostgreSQL (its settings pick the database at start)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        pytest.skip("already running on PostgreSQL")
    require(bool(postgres_dsn), "PostgreSQL is needed")
    env = dict(os.environ, CACHEDEPS_TEST_DB="postgresql",
               CACHEDEPS_TEST_PG_NAME=f"test_cachedeps_cross_{uuid.uuid4().hex[:8]}")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
         "-k", "not in_a_subprocess"],
        env=env, capture_output=True, text=True, timeout=240,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.split("\n")[-2]
