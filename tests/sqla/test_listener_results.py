"""``do_orm_execute`` listeners that answer with results of their own: SQLAlchemy's documented
re-executing cache (``ctx.invoke_statement()``, frozen, merged back with
``merge_frozen_result``) before the installation's listener, and one after it that substitutes
a result. The first gets the installation's (cached) result through ``invoke_statement()``
and merges it as it would the database's; the second's result reaches the caller, and nothing
is stored for the read it answered."""

from __future__ import annotations

from sqlalchemy import event, select
from sqlalchemy.orm import loading

from .models import Book


def _titles(s, stmt):
    return [b.title for b in s.scalars(stmt)]


def test_an_earlier_listener_caching_frozen_results_merges_the_caches_results(make_app, app):
    own: dict[str, object] = {}

    def frozen_cache(ctx):  # SQLAlchemy's "Re-Executing Statements" example
        key = ctx.execution_options.get("own_cache_key")
        if key is None:
            return None
        if key in own:
            frozen = own[key]
        else:
            frozen = own[key] = ctx.invoke_statement().freeze()
        return loading.merge_frozen_result(ctx.session, ctx.statement, frozen, load=False)()

    event.listen(app.Session, "do_orm_execute", frozen_cache, insert=True)
    stmt = select(Book).where(Book.author_id == 1).order_by(Book.id).execution_options(cachedeps=True)
    for i in range(3):
        with app.Session() as s:  # its own key each time: the installation answers invoke_statement()
            assert _titles(s, stmt.execution_options(own_cache_key=f"k{i}")) == ["A1", "A2"]
            # the merged instances are the session's: their lazy loads and changes work
            book = s.scalars(stmt.execution_options(own_cache_key=f"k{i}")).first()
            assert book in s and book.author.name == "Ann"
    assert app.cache.stats()["hits"] >= 2
    with app.Session.begin() as s:
        s.get(Book, 2).title = "A2b"
    with app.Session() as s:
        assert _titles(s, stmt.execution_options(own_cache_key="after")) == ["A1", "A2b"]
        assert _titles(s, stmt) == ["A1", "A2b"]


def test_a_later_listener_substituting_a_result_is_served_and_not_stored(app):
    book_3 = select(Book).where(Book.id == 3)

    def substitute(ctx):  # answers every read of book 1 with book 3
        if ctx.is_select and ctx.execution_options.get("substitute"):
            return ctx.invoke_statement(statement=book_3)
        return None

    stmt = select(Book).where(Book.id == 1).execution_options(cachedeps=True)
    sets = app.cache.stats()["sets"]
    for _ in range(2):
        with app.Session() as s:
            event.listen(s, "do_orm_execute", substitute)
            assert _titles(s, stmt.execution_options(substitute=True)) == ["B1"]
    assert app.cache.stats()["sets"] == sets  # the listener's answers were not stored
    for _ in range(2):
        with app.Session() as s:  # without the listener: book 1's own result, cached
            assert _titles(s, stmt.execution_options(substitute=True)) == ["A1"]
    assert app.cache.stats()["hits"] >= 1
