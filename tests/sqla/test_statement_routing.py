"""The adapter resolves a statement's connection the way SQLAlchemy does, and leaves alone
what it does not cache (issue 9, found by SQLAlchemy's own test/orm run through the adapter:
dml/test_orm_upd_del_basic.py::UpdateDeleteTest::test_routing_session and
dml/test_bulk_statements.py::UpdateStmtTest::test_alt_bindparam_names)."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, event, select, update
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import Session

from sqla_cachedeps import FromCache

from .models import Author, Book


class RoutingSession(Session):
    """Routes on the statement, as SQLAlchemy documents get_bind() overrides may."""

    clauses: list = []

    def get_bind(self, mapper=None, *, clause=None, **kw):
        if clause is None:
            raise KeyError("clause")  # SQLAlchemy always passes the statement it runs
        RoutingSession.clauses.append(type(clause).__name__)
        return super().get_bind(mapper, clause=clause, **kw)


def test_a_session_routing_on_the_statement(make_app, app):
    routed = make_app(session_class=RoutingSession)
    stmt = select(Book).where(Book.author_id == 1).order_by(Book.id).options(FromCache())
    for _ in range(2):  # a miss, then a hit
        with routed.Session() as s:
            assert [b.title for b in s.scalars(stmt)] == ["A1", "A2"]
            assert s.get(Author, 1).name == "Ann"
    with routed.Session.begin() as s:
        s.execute(update(Book).where(Book.author_id == 2).values(pages=31),
                  execution_options={"synchronize_session": "fetch"})
    with routed.Session() as s:
        assert s.get(Book, 3).pages == 31
    assert set(RoutingSession.clauses) >= {"Select", "Update"}


def _cache_every_select(orm_state):
    if orm_state.is_select:
        orm_state.update_execution_options(cachedeps=True)


def test_a_select_given_several_parameter_sets_is_left_to_sqlalchemy(app):
    # An ORM bulk UPDATE with synchronize_session="fetch" first runs its select with every
    # parameter set; SQLAlchemy then refuses the statement with its own error.
    event.listen(app.Session, "do_orm_execute", _cache_every_select, insert=True)
    stmt = update(Book).where(Book.id == bindparam("b_id")).values(pages=bindparam("q")).execution_options(
        dml_strategy="orm")
    with app.Session() as s:
        with pytest.raises(InvalidRequestError, match="multiple parameter sets"):
            s.execute(stmt, [{"b_id": 1, "q": 5}, {"b_id": 2, "q": 8}],
                      execution_options={"synchronize_session": "fetch"})
