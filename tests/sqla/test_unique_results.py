"""Results of joined eager loads against collections must be uniqued (SQLAlchemy raises
otherwise) by their callers, who read the loading context to know it: the user's ``FromCache``
query and the statement a ``selectinload`` runs (nested with a joined collection load) are
served as the ORM made them, never frozen or cached (freezing one failed the load; a frozen
copy lost the context)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from sqla_cachedeps import FromCache

from .models import Author, Book, Tag


def _tagged(app) -> None:
    with app.Session.begin() as s:
        t1, t2 = Tag(id=1, name="x"), Tag(id=2, name="y")
        s.add_all([t1, t2])
        for book in s.scalars(select(Book)):
            book.tags = [t1, t2]


def test_a_cached_query_with_a_joined_collection(app):
    _tagged(app)
    for _ in range(2):  # a miss, then a hit
        with app.Session() as s:
            authors = s.scalars(
                select(Author).options(joinedload(Author.books), FromCache()).order_by(Author.id)
            ).unique().all()
            assert [(a.name, [b.title for b in a.books]) for a in authors] == [("Ann", ["A1", "A2"]), ("Bob", ["B1"])]


def test_a_cached_selectin_load_with_a_nested_joined_collection(make_app, app):
    _tagged(app)
    lazy = make_app(lazy_loads=True)
    for _ in range(2):
        with lazy.Session() as s:
            authors = s.scalars(
                select(Author).options(selectinload(Author.books).joinedload(Book.tags)).order_by(Author.id)
            ).all()
            books = [(b.title, [t.name for t in b.tags]) for a in authors for b in a.books]
            assert books == [("A1", ["x", "y"]), ("A2", ["x", "y"]), ("B1", ["x", "y"])]
