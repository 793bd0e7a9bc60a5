"""Every read path is served from the cache the second time: no SELECT besides the poll."""

from __future__ import annotations

from sqlalchemy import func, select, text

from sqla_cachedeps import FromCache, RelationshipCache

from .models import Author, Book


def test_get_is_served_from_the_cache(app):
    with app.Session() as s:
        assert s.get(Book, 1).title == "A1"
    assert len(app.selects) == 1
    app.selects.clear()
    with app.Session() as s:
        book = s.get(Book, 1)
        assert (book.title, book.pages, book.author_id, book.status) == ("A1", 10, 1, "draft")
        assert s.get(Book, 1) is book
    assert app.selects == []


def test_missing_row_is_cached_and_an_insert_makes_it_appear(app):
    with app.Session() as s:
        assert s.get(Book, 99) is None
    app.selects.clear()
    with app.Session() as s:
        assert s.get(Book, 99) is None
    assert app.selects == []
    with app.Session.begin() as s:
        s.add(Book(id=99, title="new", author_id=2))
    with app.Session() as s:
        assert s.get(Book, 99).title == "new"


def test_refresh_of_expired_object_is_served_from_the_cache(app):
    with app.Session() as s:
        book = s.get(Book, 2)
        s.commit()  # expires every object; the next attribute access refreshes it
        app.selects.clear()
        assert book.title == "A2"
        s.expire(book)
        assert (book.title, book.pages) == ("A2", 20)
    assert app.selects == []


def test_fromcache_query_is_served_from_the_cache(app):
    stmt = select(Book).where(Book.author_id == 1).order_by(Book.id).options(FromCache())
    with app.Session() as s:
        assert [b.title for b in s.scalars(stmt)] == ["A1", "A2"]
    assert len(app.selects) == 1
    app.selects.clear()
    with app.Session() as s:
        books = s.scalars(stmt).all()
        assert [(b.id, b.title, b.pages) for b in books] == [(1, "A1", 10), (2, "A2", 20)]
        assert s.get(Book, 1) is books[0]  # merged into the identity map
    assert app.selects == []


def test_execution_option_and_column_rows(app):
    stmt = (
        select(Book.title, Book.pages)
        .where(Book.author_id == 2)
        .execution_options(cachedeps=True)
    )
    for _ in range(2):
        with app.Session() as s:
            assert [tuple(r) for r in s.execute(stmt)] == [("B1", 30)]
    assert len(app.selects) == 1
    count = select(func.count()).select_from(Book).execution_options(cachedeps=True)
    for _ in range(2):
        with app.Session() as s:
            assert s.scalar(count) == 3
    assert len(app.selects) == 2


def test_relationship_cache_serves_lazy_loads(app):
    stmt = select(Author).where(Author.id == 1).options(FromCache(), RelationshipCache(Author.books))
    with app.Session() as s:
        assert [b.title for b in s.scalars(stmt).one().books] == ["A1", "A2"]
    app.selects.clear()
    with app.Session() as s:
        assert [b.title for b in s.scalars(stmt).one().books] == ["A1", "A2"]
    assert app.selects == []


def test_all_lazy_loads_when_installed_so(make_app, app):
    app.handle.uninstall()
    other = make_app(lazy_loads=True)
    for _ in range(2):
        other.selects.clear()
        with other.Session() as s:
            book = s.get(Book, 3)
            assert book.author.name == "Bob"
            assert [b.id for b in book.author.books] == [3]
    assert other.selects == []


def test_uncacheable_statements_go_to_the_database(app):
    stmt = select(Book).from_statement(text("SELECT * FROM sq_book WHERE id = 1")).options(FromCache())
    for _ in range(2):
        with app.Session() as s:
            assert s.scalars(stmt).one().title == "A1"
    assert len(app.selects) == 2
    plain = select(Book).where(Book.id == 1)  # not marked: never cached
    for _ in range(2):
        with app.Session() as s:
            s.scalars(plain).one()
    assert len(app.selects) == 4


def test_reads_after_a_write_in_the_transaction_bypass_the_cache(app):
    stmt = select(Book).where(Book.author_id == 1).options(FromCache())
    with app.Session() as s:
        s.scalars(stmt).all()
        s.get(Book, 1)
    with app.Session() as s:
        s.get(Book, 3).author_id = 1
        s.flush()
        s.expunge_all()
        assert sorted(b.id for b in s.scalars(stmt)) == [1, 2, 3]
        assert s.get(Book, 3).author_id == 1
        s.rollback()
    with app.Session() as s:
        assert sorted(b.id for b in s.scalars(stmt)) == [1, 2]


def test_many_to_one_lazy_load_is_a_cached_get(app):
    for _ in range(2):
        app.selects.clear()
        with app.Session() as s:
            book = s.get(Book, 3)
            assert book.author.name == "Bob"
    assert app.selects == []


def test_caching_session_answers_hits_without_a_statement(make_app, app):
    from sqla_cachedeps import CachingSession

    fast = make_app(session_class=CachingSession)
    with fast.Session() as s:
        assert s.get(Book, 1).title == "A1"
        assert s.get(Book, 98) is None
    fast.selects.clear()
    with fast.Session() as s:
        book = s.get(Book, 1)
        assert (book.title, book.pages) == ("A1", 10)
        assert s.get(Book, 1) is book
        assert s.get(Book, 98) is None
        assert s.get(Book, 1, populate_existing=True).title == "A1"  # options: the ordinary path
    assert len(fast.selects) == 1
    fast.selects.clear()
    with fast.Session() as s:
        s.get(Book, 2).title = "mine"
        s.flush()
        s.expunge_all()
        assert s.get(Book, 2).title == "mine"  # a transaction with writes reads past the cache
        s.delete(s.get(Book, 2))
        s.flush()
        assert s.get(Book, 2) is None
        s.rollback()
    with fast.Session() as s:
        assert s.get(Book, 2).title == "A2"


def test_a_miss_stores_database_values_not_older_identity_map_values(app):
    app.Session.configure(expire_on_commit=False)
    stmt = select(Book).where(Book.author_id == 1).order_by(Book.id).options(FromCache())
    with app.Session() as s:
        book = s.get(Book, 1)
        s.commit()  # book keeps its loaded values into the next transaction
        with app.Session.begin() as other:
            other.get(Book, 1).title = "written"
        # As without the cache, the instance in the identity map keeps its attributes (the
        # load does not populate existing instances); what it holds is not stored.
        assert [b.title for b in s.scalars(stmt)] == ["A1", "A2"]
        assert book.title == "A1"
        # populate_existing() asks for the database's values: they are stored
        assert [b.title for b in s.scalars(stmt.execution_options(populate_existing=True))] == ["written", "A2"]
    for _ in range(2):  # a hit then
        with app.Session() as s:
            assert [b.title for b in s.scalars(stmt)] == ["written", "A2"]
    assert app.cache.stats()["hits"] >= 1


def test_a_miss_leaves_identity_map_instances_as_a_plain_load_does(app):
    """A miss runs the statement as given: no populate_existing of its own, which the
    session's later do_orm_execute listeners would see and which would overwrite the
    loaded attributes of the caller's instances (merge(load=False) here)."""
    from sqlalchemy import event
    from sqlalchemy.orm import make_transient_to_detached

    seen = []
    stmt = select(Book).where(Book.author_id == 1).order_by(Book.id).options(FromCache())
    with app.Session() as s:
        event.listen(s, "do_orm_execute", lambda ctx: seen.append(ctx.execution_options.get("populate_existing")))
        mine = Book(id=1, title="mine", pages=1, author_id=1, status="draft")
        make_transient_to_detached(mine)
        s.add(mine)  # persistent, holding the caller's values
        assert [b.title for b in s.scalars(stmt)] == ["mine", "A2"]
        assert s.scalars(stmt).first() is mine
        assert seen and not any(seen)
    with app.Session() as s:  # the caller's values were not stored
        assert [b.title for b in s.scalars(stmt)] == ["A1", "A2"]
    newest = select(Book).where(Book.author_id == 1).order_by(Book.id.desc()).options(FromCache())
    with app.Session() as s:
        s.get(Book, 2)
        s.commit()  # expires it: the next load fills every column from its row
        assert [b.title for b in s.scalars(newest)] == ["A2", "A1"]
    app.selects.clear()
    with app.Session() as s:
        assert [b.title for b in s.scalars(newest)] == ["A2", "A1"]
    assert app.selects == []  # stored by the miss above


def test_a_hit_fills_what_an_instance_did_not_load(app):
    """As the ORM's loader does for an instance already in the identity map: a hit fills
    every attribute the instance holds no value for, not only its expired ones (a
    with_expression() attribute expired on its own stayed None)."""
    from sqlalchemy.orm import load_only

    stmt = select(Book).where(Book.author_id == 1).order_by(Book.id).options(FromCache())
    with app.Session() as s:
        s.scalars(stmt).all()  # fills the entry
    with app.Session() as s:
        book = s.scalars(select(Book).where(Book.id == 1).options(load_only(Book.title))).one()
        assert "pages" not in book.__dict__
        app.selects.clear()
        assert s.scalars(stmt).first() is book  # a hit
        assert book.__dict__["pages"] == 10
        assert book.pages == 10
    assert app.selects == []


def test_unresolvable_deferred_value_raises_the_orms_own_error(app):
    """``Book.author == a`` of an unflushed ``a`` has no value to key the read by: the
    statement is not cached and SQLAlchemy raises its own StatementError."""
    import pytest
    from sqlalchemy.exc import StatementError

    with app.Session(autoflush=False) as s:
        author = Author(name="new")
        with pytest.raises(StatementError, match="no value has been set for this column"):
            s.scalars(select(Book).where(Book.author == author).options(FromCache())).all()


def test_eager_loaded_collections_load_lazily_on_a_hit(app):
    from sqlalchemy.orm import joinedload

    stmt = select(Author).order_by(Author.id).options(joinedload(Author.books), FromCache())
    for _ in range(2):
        with app.Session() as s:
            authors = s.scalars(stmt).unique().all()
            assert [[b.title for b in a.books] for a in authors] == [["A1", "A2"], ["B1"]]
    with app.Session.begin() as s:
        s.get(Book, 3).title = "B2"
    with app.Session() as s:
        assert [[b.title for b in a.books] for a in s.scalars(stmt).unique()] == [["A1", "A2"], ["B2"]]


def test_relationship_cache_takes_relationships_only():
    import pytest

    from cachedeps.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="relationship attributes"):
        RelationshipCache(Book.title)
    with pytest.raises(ConfigurationError, match="at least one"):
        RelationshipCache()


def test_unnamed_columns_keep_their_place_in_a_hit(app):
    # test/orm/test_pickled.py::TupleLabelTest::test_tuple_labeling: an anonymous alias is a
    # column without a name; the hit's result had one column fewer than its rows' cells and
    # uniquing its rows (as the legacy Query does) failed.
    from sqlalchemy.orm import aliased

    written = aliased(Book)
    stmt = select(Author, written).join(Author.books.of_type(written)).order_by(Author.id, written.id)
    for _ in range(2):  # a miss, then a hit
        with app.Session() as s:
            rows = s.execute(stmt.options(FromCache())).unique().all()
            assert [(a.id, b.id) for a, b in rows] == [(1, 1), (1, 2), (2, 3)]
            assert list(rows[0]._fields) == ["Author"]
            legacy = s.query(Author, written).join(Author.books.of_type(written)).order_by(Author.id, written.id)
            assert [(a.id, b.id) for a, b in legacy.options(FromCache()).all()] == [(1, 1), (1, 2), (2, 3)]
    assert app.cache.stats()["hits"] >= 2


def test_selects_fetched_in_batches_are_left_to_the_database(app):
    # test/orm/test_loading.py::InstancesTest::test_cursor_close_exception_raised_in_iteration:
    # a yield_per() select was frozen whole (every row at once, no cursor to close).
    stmt = select(Book).order_by(Book.id).options(FromCache())
    for options in ({"yield_per": 1}, {"stream_results": True, "max_row_buffer": 1}):
        for _ in range(2):
            with app.Session() as s:
                result = s.execute(stmt.execution_options(**options))
                assert result.raw is not None  # the cursor's own result
                assert [row[0].id for row in result] == [1, 2, 3]
                assert result.raw._soft_closed
    assert app.cache.stats()["sets"] == 0


def test_rows_of_a_hit_are_targeted_by_the_statements_expressions(app):
    # test/orm/test_cache_key.py::RoundTripTest::test_column_targeting_core_execute: an ORM
    # result's rows are looked up by the statement's column expressions as well as by name.
    from sqlalchemy import case

    for _ in range(2):  # a miss, then a hit
        size = case((Book.pages > 15, "long"), else_="short")
        stmt = select(Book, Author.name, size, Book.title).join(Author).where(Book.id == 2).options(FromCache())
        with app.Session() as s:
            row = s.execute(stmt).one()
            assert row._mapping[size] == "long"
            assert row._mapping[Book.title] == "A2"
            assert row._mapping[Author.name] == "Ann"
            assert row._mapping[Book].id == 2
            assert row.title == "A2"
    assert app.cache.stats()["hits"] >= 1


def test_a_query_returning_tuples_never_shares_the_entity_querys_entry(app):
    """``Query.only_return_tuples(True)`` has the SQL and parameters of the plain query, and
    rows instead of entities: its key tells them apart (SQLAlchemy's
    test_query.py::OnlyReturnTuplesTest, on PostgreSQL's test order)."""
    from collections.abc import Sequence

    for _ in range(2):
        with app.Session() as s:
            q = s.query(Book).filter(Book.id == 1).execution_options(cachedeps=True)
            assert isinstance(q.first(), Book)
            row = q.only_return_tuples(True).first()
            assert isinstance(row, Sequence) and isinstance(row[0], Book)
