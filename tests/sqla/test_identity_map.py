"""Loads through the cache leave the session's identity map as SQLAlchemy's own loads leave
it (issue 9, found by SQLAlchemy's test/orm run through the adapter: test_deferred.py's
WithExpressionTest and test_merge.py::MergeTest::test_option_state)."""

from __future__ import annotations

import pytest
import sqlalchemy
from sqlalchemy import Integer, inspect, null, select
from sqlalchemy.orm import DeclarativeBase, Mapped, defer, mapped_column, query_expression, with_expression

from sqla_cachedeps import FromCache


class _Base(DeclarativeBase):
    pass


class Crate(_Base):
    __tablename__ = "im_crate"
    id: Mapped[int] = mapped_column(primary_key=True)
    x: Mapped[int] = mapped_column(Integer)
    y: Mapped[int] = mapped_column(Integer)
    total: Mapped[int | None] = query_expression()


@pytest.fixture
def depot(engine, make_app):
    _Base.metadata.create_all(engine)
    app = make_app()
    with app.Session.begin() as s:
        s.add_all([Crate(id=1, x=1, y=2), Crate(id=2, x=3, y=4)])
    yield app
    _Base.metadata.drop_all(engine)


def test_a_load_keeps_the_loaded_attributes_of_instances_in_the_session(depot):
    # WithExpressionTest::test_no_refresh_unless_populate_existing: a load does not overwrite
    # what an instance already in the identity map holds; a miss populated existing instances.
    by_null = select(Crate).where(Crate.id == 1).options(with_expression(Crate.total, null()), FromCache())
    by_sum = select(Crate).where(Crate.id == 1).options(with_expression(Crate.total, Crate.x + Crate.y), FromCache())
    for _ in range(2):  # misses, then hits
        with depot.Session() as s:
            crate = s.scalars(by_null).one()
            assert crate.total is None
            assert s.scalars(by_sum).one() is crate
            assert crate.total is None  # kept, as SQLAlchemy keeps it
            assert s.scalars(by_sum.execution_options(populate_existing=True)).one().total == 3
    with depot.Session() as s:  # what was stored for by_sum is the database's
        assert s.scalars(by_sum).one().total == 3
    # SQLAlchemy 2.0 results carry no load run id: an instance in the session before the load
    # counts as not filled by it, so by_sum's entry is stored by a later miss only
    assert depot.cache.stats()["hits"] >= (2 if sqlalchemy.__version__ >= "2.1" else 1)


def test_a_load_fills_attributes_expired_alone(depot):
    # WithExpressionTest::test_dont_explode_on_expire_individual: expiring a with_expression()
    # attribute alone leaves it out of __dict__ without marking it expired; the next load of
    # the row fills it again, a hit as well.
    stmt = select(Crate).where(Crate.x > 1).order_by(Crate.id).options(
        with_expression(Crate.total, Crate.x + Crate.y), FromCache())
    for _ in range(2):  # a miss, then a hit
        with depot.Session() as s:
            crate = s.scalars(stmt).first()
            assert crate.total == 7
            s.expire(crate, ["total"])
            assert crate.total is None
            s.scalars(stmt).first()
            assert crate.total == 7
    assert depot.cache.stats()["hits"] >= 2


def test_a_hit_gives_instances_the_load_path_and_options_of_a_load(depot):
    # MergeTest::test_option_state: instances from a hit had an empty load path and none of
    # the statement's propagating options (a later refresh or lazy load replays them).
    option = defer(Crate.y)
    stmt = select(Crate).order_by(Crate.id).options(option, FromCache())
    with depot.Session() as s:
        plain = inspect(s.scalars(stmt.execution_options(cachedeps=False)).first())
        expected = (plain.load_path.path, plain.load_options)
    assert expected == ((Crate.__mapper__,), (option,))
    for _ in range(2):  # a miss, then a hit
        with depot.Session() as s:
            crate = s.scalars(stmt).first()
            state = inspect(crate)
            assert (state.load_path.path, state.load_options) == expected
            assert "y" not in vars(crate)
    assert depot.cache.stats()["hits"] >= 1


def test_instances_kept_from_an_earlier_transaction_poison_a_recording(depot):
    # A miss no longer overwrites what the session holds: values a session kept from an
    # earlier transaction (expire_on_commit=False) must not reach a stored computation.
    depot.Session.configure(expire_on_commit=False)
    stmt = select(Crate).order_by(Crate.id).options(FromCache())
    with depot.Session() as s:
        crate = s.get(Crate, 1)
        s.commit()  # crate keeps x=1 into the next transaction
        with depot.Session.begin() as other:
            other.get(Crate, 1).x = 5
        with depot.cache.recording() as rec:
            assert [c.x for c in s.scalars(stmt)] == [1, 3]  # as SQLAlchemy: the session's instance
        assert rec.poisoned and "earlier transaction" in rec.poisoned
        assert crate.x == 1
    with depot.Session() as s:  # the entry holds the database's values
        assert [c.x for c in s.scalars(stmt)] == [5, 3]
    depot.Session.configure(expire_on_commit=True)
    with depot.Session() as s, depot.cache.recording() as rec:
        crate = s.scalars(select(Crate).where(Crate.id == 1).options(FromCache())).one()
        assert [c.x for c in s.scalars(stmt)] == [5, 3]
    assert rec.poisoned is None


def test_identity_keys_are_taken_before_a_load_only_where_results_carry_no_run_id(app, monkeypatch):
    """What a load filled is told by its run id (SQLAlchemy 2.1's results carry their load's
    context) or, on 2.0, by the identity keys taken before it: a copy of every key of the
    session on every get and query miss, which 2.1 does without."""
    from sqlalchemy.orm.identity import IdentityMap

    from sqla_cachedeps import identity

    from .models import Book

    taken = []
    real_keys = IdentityMap.keys
    monkeypatch.setattr(IdentityMap, "keys", lambda self: taken.append(1) or real_keys(self))
    by_pages = select(Book).where(Book.pages > 0).order_by(Book.id).options(FromCache())
    with app.Session() as s:
        result = s.execute(select(Book).where(Book.id == 2))
        assert (identity.load_run(result) is not None) is identity.RESULTS_CARRY_LOAD
        result.all()
        taken.clear()
        assert s.get(Book, 1).title == "A1"  # a get miss, the session holding an instance
        assert [b.id for b in s.scalars(by_pages)] == [1, 2, 3]  # a query miss
    assert bool(taken) is not identity.RESULTS_CARRY_LOAD
    with app.Session() as s:  # both were stored: hits
        assert s.get(Book, 1).title == "A1"
        assert [b.id for b in s.scalars(by_pages)] == [1, 2, 3]
    assert app.cache.stats()["hits"] == 2
