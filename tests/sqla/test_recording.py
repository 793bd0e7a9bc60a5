"""Reads inside ``cache.recording()`` that no dependency key covers poison it (issue 9, break 15).

Before, a value computed from an uncached read (a select without ``FromCache``, Core or
text SQL) was stored with the keys of its other reads, or none, and never invalidated.
"""

from __future__ import annotations

from sqlalchemy import select, text

from sqla_cachedeps import FromCache

from .models import Author, Book


def test_cached_reads_keep_the_recording_clean(app):
    with app.Session() as s, app.cache.recording() as rec:
        s.get(Book, 1)
        s.scalars(select(Book).where(Book.author_id == 1).options(FromCache())).all()
        s.get(Book, 1)
    assert rec.poisoned is None and rec.keys
    with app.Session() as s, app.cache.recording() as rec:  # the same reads as hits
        s.get(Book, 2)
        s.scalars(select(Book).where(Book.author_id == 1).options(FromCache())).all()
    assert rec.poisoned is None


def test_uncached_reads_poison_the_recording(app):
    reads = [
        lambda s: s.scalars(select(Book).where(Book.pages > 5)).all(),
        lambda s: s.execute(text("SELECT title FROM sq_book")).all(),
        lambda s: s.connection().execute(select(Author.name)).all(),
    ]
    for read in reads:
        with app.Session() as s:
            s.connection()  # begun (the poll) outside the recording
            with app.cache.recording() as rec:
                read(s)
        assert rec.poisoned and "uncached statement" in rec.poisoned


def test_get_or_compute_stores_nothing_after_an_uncached_read(app):
    calls = []

    def compute():
        calls.append(1)
        with app.Session() as s:
            return sorted(s.scalars(select(Book.title)).all())

    for _ in range(2):
        assert app.cache.get_or_compute("titles", compute) == ["A1", "A2", "B1"]
    assert len(calls) == 2
    with app.Session.begin() as s:
        s.get(Book, 1).title = "Z"
    assert app.cache.get_or_compute("titles", compute) == ["A2", "B1", "Z"]


def test_a_value_from_cached_reads_is_stored_and_invalidated(app):
    with app.Session() as s:
        s.connection()  # poll past the fixture's own writes: the value is stamped after them
    calls = []

    def compute():
        calls.append(1)
        with app.Session() as s:
            return [b.title for b in s.scalars(select(Book).where(Book.author_id == 1).order_by(Book.id)
                                               .options(FromCache()))]

    for _ in range(2):
        assert app.cache.get_or_compute("ann", compute) == ["A1", "A2"]
    assert len(calls) == 1
    with app.Session.begin() as s:
        s.get(Book, 2).title = "Z"
    assert app.cache.get_or_compute("ann", compute) == ["A1", "Z"]
