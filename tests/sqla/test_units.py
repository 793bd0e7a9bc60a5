"""Units of work with SQLAlchemy (issue 12, deliverable 5): inside ``cachedeps.unit_of_work()``
the session transactions of a script or a task poll the feed once, read their own writes, and
a unit opened after another process's commit sees it."""

from __future__ import annotations

import cachedeps

from .models import Book


def _polls(app) -> int:
    return app.cache.stats()["polls"]


def test_sessions_inside_a_unit_poll_once(app):
    with app.Session() as s:
        s.get(Book, 1)  # fills
    before = _polls(app)
    with cachedeps.unit_of_work():
        for _ in range(10):
            with app.Session() as s:  # a session per step, as scripts and tasks often do
                assert s.get(Book, 1).title == "A1"
    assert _polls(app) - before == 1
    before = _polls(app)
    for _ in range(3):
        with app.Session() as s:
            s.get(Book, 1)
    assert _polls(app) - before == 3  # outside a unit: one poll per transaction, as before


def test_a_unit_reads_its_own_writes(app):
    with cachedeps.unit_of_work():
        with app.Session() as s:
            assert s.get(Book, 1).title == "A1"
        with app.Session.begin() as s:
            s.get(Book, 1).title = "Mine"
        with app.Session() as s:
            assert s.get(Book, 1).title == "Mine"


def test_another_process_writes_between_two_units(app, make_app):
    other = make_app()  # another process: its own delta maps, the same database and store
    with cachedeps.unit_of_work():
        with app.Session() as s:
            assert s.get(Book, 1).title == "A1"
        with app.Session() as s:
            assert s.get(Book, 1).title == "A1"
    with other.Session.begin() as s:
        s.get(Book, 1).title = "Theirs"
    with cachedeps.unit_of_work():
        with app.Session() as s:
            assert s.get(Book, 1).title == "Theirs"
