"""Shapes of issue 9's known breaks that its first SQLAlchemy regression tests left out.

- Break 1 through a many-to-many relationship: ``outerjoin(Book.tags).where(Tag.id.is_(None))``
  lists books without tags; linking a tag (a flush of the collection, a Core insert into
  the secondary table) or unlinking the last one changes it.
- The same class with inner joins: a table the statement reaches only through an ORM
  relationship join (``join(Author.books)``, the ``secondary`` table of
  ``join(Book.tags)``) is missing from the read's keys (``sqla_cachedeps.analysis.read_keys``
  walks the Core elements of the statement, not the relationship joins the ORM expands at
  compile time), so a write to that table alone left the read stale. The adapter now
  takes the tables of the statement's setup joins (target, ``ON`` clause, ``secondary``).
- Break 17 with JSON parameters: two long JSON documents that differ only at their end
  must not share a query key.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import JSON, ForeignKey, delete, insert, literal, select
from sqlalchemy.orm import DeclarativeBase, Mapped, aliased, mapped_column, relationship

from sqla_cachedeps import FromCache
from sqla_cachedeps.analysis import read_keys

from .models import Author, Book, Tag, book_tag


def _untagged(app: Any) -> list[int]:
    stmt = select(Book.id).outerjoin(Book.tags).where(Tag.id.is_(None)).order_by(Book.id)
    with app.Session() as s:
        return list(s.scalars(stmt.options(FromCache())).all())


def _cached(app: Any) -> list[int]:
    first = _untagged(app)
    app.selects.clear()
    assert _untagged(app) == first
    assert app.selects == [], "the read was not served from the cache"
    return first


def _tag_first_book(app: Any) -> None:
    with app.Session.begin() as s:
        red = Tag(id=1, name="red")
        book = s.get(Book, 1)
        book.tags.append(red)


def test_m2m_anti_join_sees_a_collection_append(app, make_app):
    _tag_first_book(app)
    assert _cached(app) == [2, 3]
    writer = make_app()
    with writer.Session.begin() as s:
        book, red = s.get(Book, 2), s.get(Tag, 1)
        book.tags.append(red)
    assert _untagged(app) == [3]


def test_m2m_anti_join_sees_a_core_insert_into_the_secondary_table(app, make_app):
    _tag_first_book(app)
    assert _cached(app) == [2, 3]
    with make_app().Session.begin() as s:
        s.execute(insert(book_tag).values(book_id=3, tag_id=1))
    assert _untagged(app) == [2]


def test_m2m_anti_join_sees_the_last_link_removed(app, make_app):
    _tag_first_book(app)
    assert _cached(app) == [2, 3]
    with make_app().Session.begin() as s:
        s.execute(delete(book_tag).where(book_tag.c.book_id == 1))
    assert _untagged(app) == [1, 2, 3]


def test_relationship_join_keys_name_every_table_it_reads():
    # a table reached only through the join depends on its table key; one the WHERE
    # constrains (an inner join, read once, not under an alias) keeps its value key
    assert "sq_book" in read_keys(select(Author.id).join(Author.books))
    assert {"sq_tag.name=red", "sq_book_tag"} <= set(read_keys(select(Book.id).join(Book.tags).where(Tag.name == "red")))
    assert "sq_book_tag" in read_keys(select(Book.id).outerjoin(Book.tags).where(Tag.id.is_(None)))
    assert "sq_book_tag" in read_keys(select(Book.id).join(Tag, Book.tags))
    assert "sq_book_tag" in read_keys(select(Book.id).join(Book.tags.of_type(aliased(Tag))))


def test_inner_relationship_join_sees_a_first_related_row(app, make_app):
    with app.Session.begin() as s:
        s.add(Author(id=3, name="Carl"))
    stmt = select(Author.id).join(Author.books).distinct().order_by(Author.id).options(FromCache())

    def authors_with_books() -> list[int]:
        with app.Session() as s:
            return list(s.scalars(stmt).all())

    assert authors_with_books() == [1, 2]
    app.selects.clear()
    assert authors_with_books() == [1, 2]
    assert app.selects == [], "the read was not served from the cache"
    with make_app().Session.begin() as s:
        s.add(Book(id=4, title="C1", author_id=3, pages=1))
    assert authors_with_books() == [1, 2, 3]


def test_inner_m2m_join_sees_a_core_insert_into_the_secondary_table(app, make_app):
    _tag_first_book(app)
    stmt = select(Book.id).join(Book.tags).where(Tag.name == "red").order_by(Book.id).options(FromCache())

    def red_books() -> list[int]:
        with app.Session() as s:
            return list(s.scalars(stmt).all())

    assert red_books() == [1]
    app.selects.clear()
    assert red_books() == [1]
    assert app.selects == [], "the read was not served from the cache"
    with make_app().Session.begin() as s:
        s.execute(insert(book_tag).values(book_id=3, tag_id=1))
    assert red_books() == [1, 3]


def test_long_json_parameters_do_not_share_a_query_key(app):
    app.handle.verifier.rate = 0  # the rows themselves must be right, not just reported

    def read(value: dict) -> list[Any]:
        stmt = select(Book.id, literal(value, JSON())).where(Book.id == 1).options(FromCache())
        with app.Session() as s:
            return [row[1] for row in s.execute(stmt)]

    a, b = {"k": "x" * 100 + "A"}, {"k": "x" * 100 + "B"}
    for _ in range(2):
        assert read(a) == [a]
        assert read(b) == [b]



def test_self_referential_join_reads_its_table_unconstrained():
    # the WHERE restricts the parents only: a child row inserted under a parent named "x"
    # changes the result, and names no "x" of its own
    class Base(DeclarativeBase):
        pass

    class Node(Base):
        __tablename__ = "gap_node"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        parent_id: Mapped[int | None] = mapped_column(ForeignKey("gap_node.id"))
        children: Mapped[list[Node]] = relationship()

    child = aliased(Node)
    assert read_keys(select(Node.id).join(Node.children.of_type(child)).where(Node.name == "x")) == ["gap_node"]
    parent = aliased(Node)
    assert read_keys(select(parent.id).join(parent.children).where(parent.name == "x")) == ["gap_node"]
    assert read_keys(select(Node.id).where(Node.name == "x")) == ["gap_node.name=x"]


def test_loader_option_expressions_are_read():
    # with_expression() puts a correlated count of another table into the SELECT when the
    # ORM compiles the statement; the statement's own clauses do not name that table
    from sqlalchemy import func
    from sqlalchemy.orm import query_expression, with_expression

    class Base(DeclarativeBase):
        pass

    class Shelf(Base):
        __tablename__ = "gap_shelf"
        id: Mapped[int] = mapped_column(primary_key=True)
        count: Mapped[int] = query_expression()

    class Slot(Base):
        __tablename__ = "gap_slot"
        id: Mapped[int] = mapped_column(primary_key=True)
        shelf_id: Mapped[int] = mapped_column(ForeignKey("gap_shelf.id"))

    count = select(func.count(Slot.id)).where(Slot.shelf_id == Shelf.id).scalar_subquery()
    assert "gap_slot" in read_keys(select(Shelf).options(with_expression(Shelf.count, count)).where(Shelf.id == 1))
    assert read_keys(select(Shelf).where(Shelf.id == 1)) == ["gap_shelf.id=1"]


def test_every_table_the_compiled_statement_reads_is_a_dependency():
    # the installation passes the compiled statement's tables: whatever the ORM adds when it
    # compiles (joins, loader options, polymorphic loads) is a dependency, found or not
    from sqla_cachedeps.analysis import compiled_tables

    statements = [
        select(Author.id).join(Author.books),
        select(Book.id).join(Book.tags).where(Tag.name == "red"),
        select(Book).join(Book.author).where(Author.name == "Ann"),
        select(Book.id).outerjoin(Book.tags).where(Tag.id.is_(None)),
        select(Book.id).join(Book.tags.of_type(aliased(Tag))),
        select(Author).where(Author.id.in_(select(Book.author_id).where(Book.pages > 3))),
    ]
    for stmt in statements:
        tables = compiled_tables(stmt.compile())
        found = read_keys(stmt, compiled=tables)
        named = {k.split(".", 1)[0].split("/", 1)[0] for k in found}
        assert tables <= named, (str(stmt), tables, found)
    assert "sq_review" in read_keys(select(Book).where(Book.id == 1), compiled={"sq_book", "sq_review"})
    assert read_keys(select(Book).where(Book.id == 1), compiled={"sq_book"}) == ["sq_book.id=1"]


def test_mysql_write_inside_an_executable_comment(app, make_app):
    """MySQL and MariaDB run the text of ``/*! ... */`` comments: a write there is a write."""
    from sqlalchemy import text

    from .test_writes import check

    if app.engine.dialect.name != "mysql":
        pytest.skip("executable comments are MySQL's and MariaDB's")

    def write(w: Any) -> None:
        with w.Session.begin() as s:
            s.execute(text("/*M!100100 UPDATE sq_book SET author_id = 2, title = 'raw' WHERE id = 1 */"))

    check(app, make_app(), write)


def test_exists_through_a_relationship_is_cached_and_sees_a_new_related_row(app, make_app):
    # any()/has() select the literal 1 inside EXISTS: no table of its own, cacheable
    with app.Session.begin() as s:
        s.add(Author(id=3, name="Carl"))
    stmt = select(Author.id).where(Author.books.any()).order_by(Author.id).options(FromCache())

    def authors_with_books() -> list[int]:
        with app.Session() as s:
            return list(s.scalars(stmt).all())

    first = authors_with_books()
    assert 3 not in first
    app.selects.clear()
    assert authors_with_books() == first
    assert app.selects == [], "the read was not served from the cache"
    with make_app().Session.begin() as s:
        s.execute(insert(Book.__table__).values(id=4, title="C1", author_id=3, pages=1))
    assert authors_with_books() == sorted([*first, 3])
