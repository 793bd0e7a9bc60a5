"""Query keys cover everything that decides a read's rows (issue 9, found by SQLAlchemy's own
test/orm run through the adapter): reads that compile to the same SQL but bind different
values, or load different object graphs, never share a cache entry."""

from __future__ import annotations

import pytest
from sqlalchemy import ForeignKey, Integer, and_, event, select
from sqlalchemy.orm import (
    DeclarativeBase, Mapped, load_only, mapped_column, relationship, selectinload, subqueryload,
)


class _Base(DeclarativeBase):
    pass


class Customer(_Base):
    __tablename__ = "ks_customer"
    id: Mapped[int] = mapped_column(primary_key=True)


class Order(_Base):
    __tablename__ = "ks_order"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("ks_customer.id"))
    isopen: Mapped[int] = mapped_column(Integer)


# Two relationships to one mapper, differing only in a literal of their primaryjoin: their
# eager and lazy loads compile to the same SQL text (``ks_order.isopen = :isopen_1``).
Customer.open_orders = relationship(
    Order, primaryjoin=and_(Order.isopen == 1, Customer.id == Order.customer_id),
    order_by=Order.id, viewonly=True,
)
Customer.closed_orders = relationship(
    Order, primaryjoin=and_(Order.isopen == 0, Customer.id == Order.customer_id),
    order_by=Order.id, viewonly=True,
)
Customer.orders = relationship(Order, order_by=Order.id, viewonly=True)


@pytest.fixture
def shop(engine, make_app):
    _Base.metadata.create_all(engine)
    app = make_app(lazy_loads=True)
    with app.Session.begin() as s:
        s.add(Customer(id=1))
        s.add_all([Order(id=1, customer_id=1, isopen=1), Order(id=2, customer_id=1, isopen=0),
                   Order(id=3, customer_id=1, isopen=0)])
    yield app
    _Base.metadata.drop_all(engine)


@pytest.mark.parametrize("loader", [None, selectinload, subqueryload])
def test_relationships_differing_in_a_primaryjoin_literal_do_not_share_entries(shop, loader):
    stmt = select(Customer).execution_options(cachedeps=True)
    if loader is not None:
        stmt = stmt.options(loader(Customer.open_orders), loader(Customer.closed_orders))
    for _ in range(3):  # cold, then warm: verify mode checks every hit against the database
        with shop.Session() as s:
            customer = s.scalars(stmt).one()
            assert [o.id for o in customer.open_orders] == [1]
            assert [o.id for o in customer.closed_orders] == [2, 3]


def _cache_every_select(orm_state):
    # As MODELS = "__all__": the eager loads' own statements are cached too.
    if orm_state.is_select:
        orm_state.update_execution_options(cachedeps=True)


@pytest.mark.parametrize("loader", [selectinload, subqueryload])
def test_loads_with_different_loaded_columns_do_not_share_entries(shop, loader):
    # The eager load's SELECT is the same with load_only() and with raiseload("*") (the
    # parent key column is selected either way); the entities it populates are not.
    event.listen(shop.Session, "do_orm_execute", _cache_every_select, insert=True)
    partial = select(Customer).options(loader(Customer.orders).load_only(Order.isopen))
    full = select(Customer).options(loader(Customer.orders).raiseload("*"))
    for _ in range(2):
        for stmt, loaded in ((partial, {"id", "isopen"}), (full, {"id", "isopen", "customer_id"})):
            with shop.Session() as s:
                orders = s.scalars(stmt).one().orders
                assert [o.id for o in orders] == [1, 2, 3]
                assert all(loaded <= set(vars(o)) for o in orders), [sorted(vars(o)) for o in orders]
