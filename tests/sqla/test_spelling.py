"""Readers and writers spell the same data the same way (issue 9, breaks 1 to 5, SQLAlchemy).

Each test caches a read, runs a write that changes its result, and requires the new result.
"""

from __future__ import annotations

import enum
import uuid
from typing import Any

import pytest
from sqlalchemy import JSON, Enum, String, TypeDecorator, Uuid, select, text, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sqla_cachedeps import FromCache
from sqla_cachedeps.analysis import read_keys

from .models import Author, Book


class Color(enum.Enum):
    RED = 1
    BLUE = 2


class CommaList(TypeDecorator):
    """A list of integers stored as ``"1,2"``."""

    impl = String(50)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return None if value is None else ",".join(str(v) for v in value)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else [int(v) for v in value.split(",") if v]


class _Base(DeclarativeBase):
    pass


def _collation(dialect: str) -> str:
    return {"sqlite": "NOCASE", "mysql": "utf8mb4_general_ci"}.get(dialect, "cachedeps_ci")


class Spelled(_Base):
    __tablename__ = "sq_spelled"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), default="")
    data: Mapped[Any] = mapped_column(JSON, default=dict)
    numbers: Mapped[Any] = mapped_column(CommaList, default=list)
    color: Mapped[Color] = mapped_column(Enum(Color, native_enum=False), default=Color.BLUE)
    uid: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


@pytest.fixture
def sp(make_app, engine):
    """An app with the ``sq_spelled`` table; its ``name`` has a case-insensitive collation."""
    dialect = engine.dialect.name
    with engine.begin() as conn:
        if dialect == "postgresql":
            conn.execute(text(
                "CREATE COLLATION IF NOT EXISTS cachedeps_ci "
                "(provider = icu, locale = 'und-u-ks-level2', deterministic = false)"))
        collate = _collation(dialect) if dialect == "mysql" else f'"{_collation(dialect)}"'
        conn.execute(text(
            f"CREATE TABLE sq_spelled (id INTEGER PRIMARY KEY, name VARCHAR(50) COLLATE {collate}, "
            "data JSON, numbers VARCHAR(50), color VARCHAR(4), uid "
            + ("UUID" if engine.dialect.supports_native_uuid else "CHAR(32)") + ")"))  # MariaDB 10.7+: UUID
    Spelled.__table__.c.name.type.collation = _collation(dialect)
    yield make_app()
    Spelled.__table__.c.name.type.collation = None


def _ids(app: Any, stmt: Any) -> list[int]:
    with app.Session() as s:
        return list(s.scalars(stmt.options(FromCache())).all())


def _cached(app: Any, stmt: Any) -> list[int]:
    first = _ids(app, stmt)
    app.selects.clear()
    assert _ids(app, stmt) == first
    assert app.selects == [], "the read was not served from the cache"
    return first


# -- 1. outer joins ---------------------------------------------------------------------------

def test_outerjoin_anti_join_sees_a_new_related_row(app):
    with app.Session.begin() as s:
        s.add(Author(id=3, name="Carl"))
    stmt = select(Author.id).outerjoin(Author.books).where(Book.id.is_(None)).order_by(Author.id)
    assert _cached(app, stmt) == [3]
    with app.Session.begin() as s:
        s.add(Book(id=4, title="C1", author_id=3))
    assert _ids(app, stmt) == []


def test_core_outer_join_depends_on_table_keys():
    stmt = select(Author.id).select_from(Author.__table__.outerjoin(Book.__table__)).where(Book.id.is_(None))
    assert read_keys(stmt) == ["sq_author", "sq_book"]


# -- 2. collations --------------------------------------------------------------------------

def test_case_insensitive_collation_sees_another_spelling(sp):
    with sp.Session.begin() as s:
        s.add(Spelled(id=1, name="python"))
    stmt = select(Spelled.id).where(Spelled.name == "python").order_by(Spelled.id)
    assert _cached(sp, stmt) == [1]
    with sp.Session.begin() as s:
        s.add(Spelled(id=2, name="PYTHON"))
    assert _ids(sp, stmt) == [1, 2]


# -- 3. JSON ----------------------------------------------------------------------------------

def test_json_one_to_true_is_a_change(sp):
    with sp.Session.begin() as s:
        s.add(Spelled(id=1, data={"a": 1}))
    stmt = select(Spelled.id).where(Spelled.data["a"].as_boolean() == True).order_by(Spelled.id)  # noqa: E712
    expected_before = _cached(sp, stmt)
    with sp.Session.begin() as s:
        s.execute(update(Spelled).where(Spelled.id == 1).values(data={"a": True}))
    assert _ids(sp, stmt) == [1]
    assert expected_before in ([], [1])  # SQLite calls JSON 1 and true equal here


# -- 4. a custom type whose bound value differs from its Python value ------------------------

def test_custom_type_read_and_write_spell_the_bound_value(sp):
    stmt = select(Spelled.id).where(Spelled.numbers == [1, 2]).order_by(Spelled.id)
    assert read_keys(stmt) == ["sq_spelled.numbers=1,2"]
    assert _cached(sp, stmt) == []
    with sp.Session.begin() as s:
        s.add(Spelled(id=1, numbers=[1, 2]))
    assert _ids(sp, stmt) == [1]


# -- 5. Enum and Uuid: spelled as bound ----------------------------------------------------

def test_enum_is_spelled_by_its_stored_name(sp):
    stmt = select(Spelled.id).where(Spelled.color == Color.RED).order_by(Spelled.id)
    assert read_keys(stmt) == ["sq_spelled.color=RED"]
    with sp.Session.begin() as s:
        s.add(Spelled(id=1, color=Color.BLUE))
    assert _cached(sp, stmt) == []
    with sp.Session.begin() as s:
        s.get(Spelled, 1).color = Color.RED
    assert _ids(sp, stmt) == [1]


def test_uuid_is_spelled_as_bound(sp):
    value = uuid.UUID("12345678-1234-5678-1234-567812345678")
    stmt = select(Spelled.id).where(Spelled.uid == value).order_by(Spelled.id)
    assert _cached(sp, stmt) == []
    with sp.Session.begin() as s:
        s.add(Spelled(id=1, uid=value))
    assert _ids(sp, stmt) == [1]
