"""Invariant I1 through SQLAlchemy reads whose tables the ORM adds when it compiles them.

A shelf's version is the number of its links in a many-to-many ``secondary`` table. Readers
count them through cached relationship joins -- ``join(Shelf.tags)``, whose ``secondary``
and target tables appear only in the compiled SQL, and ``outerjoin(...)`` anti-joins -- and
writers add links through ORM collection appends and through Core inserts into the
``secondary`` table alone. The stale-read checker (``tests/consistency/checker.py``) judges.
"""

from __future__ import annotations

import uuid
from typing import Callable

import pytest
from sqlalchemy import Column, ForeignKey, Integer, Table, create_engine, func, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker

from tests.consistency import checker
from tests.sqla.test_consistency import _app as consistency_app

pytestmark = pytest.mark.memcached

TAGS = 3  # every link is to one of these; a shelf's version is its number of links


class _Base(DeclarativeBase):
    pass


shelf_tag = Table(
    "sqj_shelf_tag", _Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("shelf_id", ForeignKey("sqj_shelf.id")),
    Column("tag_id", ForeignKey("sqj_tag.id")),
)


class Shelf(_Base):
    __tablename__ = "sqj_shelf"
    id: Mapped[int] = mapped_column(primary_key=True)
    tags: Mapped[list[Tag]] = relationship(secondary=shelf_tag, viewonly=False)


class Tag(_Base):
    __tablename__ = "sqj_tag"
    id: Mapped[int] = mapped_column(primary_key=True)


def _app(ctx: dict):
    # verify mode off: the checker counts stale reads, which verify mode would raise instead
    return consistency_app(ctx, verify=False)


def make_writer(ctx: dict, index: int) -> Callable[[int], int]:
    """Return ``write(shelf) -> version``: one more link, every other one a Core insert."""
    factory, _ = _app(ctx)
    turn = [index]

    def write(shelf: int) -> int:
        turn[0] += 1
        with factory.begin() as s:
            if turn[0] % 2:
                s.execute(insert(shelf_tag).values(shelf_id=shelf, tag_id=turn[0] % TAGS))
            else:
                owner = s.get(Shelf, shelf)
                owner.tags.append(s.get(Tag, turn[0] % TAGS))
                s.flush()
            version = s.execute(
                select(func.count()).select_from(shelf_tag).where(shelf_tag.c.shelf_id == shelf),
                execution_options={"cachedeps": False},
            ).scalar_one()
        checker.note_commit(shelf, version)
        return version

    return write


def make_reader(ctx: dict, index: int) -> Callable[[int], int]:
    """Return ``read(shelf) -> version`` through cached relationship joins."""
    from sqla_cachedeps import FromCache

    factory, cache = _app(ctx)
    turn = [index]

    def read(shelf: int) -> int:
        turn[0] += 1
        with factory() as s:
            if turn[0] % 2:
                stmt = select(func.count(Tag.id)).select_from(Shelf).join(Shelf.tags).where(Shelf.id == shelf)
                return s.execute(stmt.options(FromCache())).scalar_one()
            # the shelves without links: a shelf leaves this list with its first link
            stmt = select(Shelf.id).outerjoin(Shelf.tags).where(Tag.id.is_(None)).options(FromCache())
            if shelf in set(s.scalars(stmt)):
                return 0
            stmt = select(func.count(Tag.id)).select_from(Shelf).join(Shelf.tags).where(Shelf.id == shelf)
            count = s.execute(stmt.options(FromCache())).scalar_one()
            return max(count, 1)

    read.stats = cache.stats  # type: ignore[attr-defined]
    return read


def test_no_stale_reads_through_relationship_joins(tmp_path, memcached):
    import sqla_cachedeps

    url = f"sqlite:///{tmp_path / 'shelves.sqlite'}"
    engine = create_engine(url)
    _Base.metadata.create_all(engine)
    sqla_cachedeps.create_feed_table(engine)
    with sessionmaker(engine).begin() as s:
        s.add_all([Shelf(id=i) for i in range(4)] + [Tag(id=i) for i in range(TAGS)])
    engine.dispose()
    ctx = {"url": url, "store": memcached.url, "namespace": f"j{uuid.uuid4().hex[:8]}:"}
    report = checker.run(make_writer, make_reader, ctx, writers=2, readers=2, items=4, duration=2.0, min_writes=10)
    print(report.summary())
    report.assert_ok(min_reads=100, min_writes=10)
    assert report.counters.get("hits", 0) > 0
