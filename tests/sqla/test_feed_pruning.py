"""The feed table of a SQLAlchemy application is pruned by its own commits (as Django's is),
and a process whose position was pruned away reads fresh rows: misses, never stale ones."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

import sqla_cachedeps
from cachedeps.errors import ConfigurationError
from sqla_cachedeps import writes
from sqla_cachedeps.feed import DEFAULT_TABLE

from .models import Author


def _markers(app):
    key = app.engine.dialect.identifier_preparer.quote("key")
    with app.engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {DEFAULT_TABLE} WHERE {key} LIKE '!pruned:%'")).scalar_one()


def _feed_rows(app):
    with app.engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {DEFAULT_TABLE}")).scalar_one()


def test_commits_prune_the_feed_to_feed_keep_rows(make_app, monkeypatch):
    monkeypatch.setattr(writes, "PRUNE_EVERY", 5)
    writer = make_app(feed_keep=10)
    with writer.Session.begin() as s:
        s.add(Author(id=99, name="first"))
    per_commit = _feed_rows(writer)  # rows one such commit appends
    for i in range(59):
        with writer.Session.begin() as s:
            s.add(Author(id=100 + i, name=f"A{i}"))
    # Unpruned, 60 commits leave 60 * per_commit rows; pruned every 5 commits to the newest
    # 10 (its marker included), at most the rows of the 5 commits since come on top.
    assert _feed_rows(writer) <= 10 + 1 + 5 * per_commit < 60 * per_commit
    assert _markers(writer) >= 1


def test_a_reader_behind_the_pruned_rows_reads_fresh_values(make_app, monkeypatch):
    monkeypatch.setattr(writes, "PRUNE_EVERY", 3)
    reader, writer = make_app(), make_app(feed_keep=2)
    with writer.Session.begin() as s:
        s.add(Author(id=1, name="Ann"))
    with reader.Session() as s:  # cached, at the reader's position
        assert s.scalars(select(Author.name).where(Author.id == 1)).one() == "Ann"
        assert s.scalars(select(Author.name).where(Author.id == 1)).one() == "Ann"
    for i in range(12):  # past the reader's position: the rows it would need are pruned
        with writer.Session.begin() as s:
            s.get(Author, 1).name = f"Ann {i}"
    with reader.Session() as s:
        assert s.scalars(select(Author.name).where(Author.id == 1)).one() == "Ann 11"


def test_feed_keep_none_never_prunes_and_bad_values_are_refused(make_app, monkeypatch):
    monkeypatch.setattr(writes, "PRUNE_EVERY", 2)
    app = make_app(feed_keep=None)
    for i in range(10):
        with app.Session.begin() as s:
            s.add(Author(id=200 + i, name=f"B{i}"))
    assert _markers(app) == 0
    assert _feed_rows(app) >= 10
    for bad in (-1, 1.5, True, "100"):
        with pytest.raises(ConfigurationError, match="feed_keep"):
            sqla_cachedeps.install(type("S", (app.Session.class_,), {}), app.cache, feed_keep=bad)
