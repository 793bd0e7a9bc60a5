"""Cached loads build the same object graph as database loads (issue 9, found by SQLAlchemy's
own test/orm run through the adapter: test_lazy_relations.py::LazyTest::test_map_to_cte_subq,
whose fixture classes compare by value)."""

from __future__ import annotations

import pytest
from sqlalchemy import ForeignKey, String, event, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class _Base(DeclarativeBase):
    pass


class Shelf(_Base):
    __tablename__ = "og_shelf"
    id: Mapped[int] = mapped_column(primary_key=True)
    items: Mapped[list[Item]] = relationship(back_populates="shelf", order_by="Item.id")


class Item(_Base):
    __tablename__ = "og_item"
    id: Mapped[int] = mapped_column(primary_key=True)
    shelf_id: Mapped[int] = mapped_column(ForeignKey("og_shelf.id"))
    colour: Mapped[str] = mapped_column(String(20))
    shelf: Mapped[Shelf] = relationship(back_populates="items")

    # Compared by value, as SQLAlchemy's test fixtures (ComparableEntity) do: two red items
    # are equal, yet distinct members of a collection.
    def __eq__(self, other):
        return isinstance(other, Item) and other.colour == self.colour

    def __hash__(self):
        return hash(self.colour)


def _cache_every_select(orm_state):
    if orm_state.is_select:
        orm_state.update_execution_options(cachedeps=True)


@pytest.fixture
def store_room(engine, make_app):
    _Base.metadata.create_all(engine)
    app = make_app(lazy_loads=True)
    with app.Session.begin() as s:
        s.add(Shelf(id=1, items=[Item(id=1, colour="red"), Item(id=2, colour="red"),
                                 Item(id=3, colour="blue")]))
    event.listen(app.Session, "do_orm_execute", _cache_every_select, insert=True)
    yield app
    _Base.metadata.drop_all(engine)


def test_cached_collections_keep_members_that_compare_equal(store_room):
    for _ in range(3):  # cold, then warm (verify mode checks every hit)
        with store_room.Session() as s:
            shelf = s.get(Shelf, 1)
            assert [i.id for i in shelf.items] == [1, 2, 3]
        with store_room.Session() as s:
            items = s.scalars(select(Item).order_by(Item.id)).unique().all()
            assert [i.id for i in items] == [1, 2, 3]


class Rack(_Base):
    __tablename__ = "og_rack"
    id: Mapped[int] = mapped_column(primary_key=True)
    parts: Mapped[list[Part]] = relationship(lazy="selectin", order_by="Part.id")


class Part(_Base):
    __tablename__ = "og_part"
    id: Mapped[int] = mapped_column(primary_key=True)
    rack_id: Mapped[int] = mapped_column(ForeignKey("og_rack.id"))


def test_gets_of_mappers_with_eager_relationships_load_them(store_room):
    # test_selectin_relations.py::LoadOnExistingTest: a get populates the relationships the
    # mapper loads eagerly; a state from the cache holds columns only.
    with store_room.Session.begin() as s:
        s.add(Rack(id=1, parts=[Part(id=1), Part(id=2)]))
    for _ in range(2):
        with store_room.Session() as s:
            rack = s.get(Rack, 1)
            assert "parts" in vars(rack)
            assert [p.id for p in rack.parts] == [1, 2]
