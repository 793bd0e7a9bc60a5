"""A registry holding a class that is not mapped (yet): an ``AbstractConcreteBase`` before
``configure_mappers()``. cachedeps looks through every registry for table names (writes known
by name, DDL) and for the class of a cached result; what is not mapped is skipped, and the
application's statements run as they would without cachedeps."""

from __future__ import annotations

import pytest
from sqlalchemy import Integer, String, select, text
from sqlalchemy.ext.declarative import AbstractConcreteBase
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.orm.exc import UnmappedClassError

from sqla_cachedeps import FromCache

from .models import Author


@pytest.fixture
def pending_registry():
    """A registry with an abstract concrete base whose mapping waits for configuration."""

    class Base(DeclarativeBase):
        pass

    class Shape(AbstractConcreteBase, Base):
        strict_attrs = True
        id: Mapped[int] = mapped_column(Integer, primary_key=True)

    class Circle(Shape):
        __tablename__ = "um_circle"
        radius: Mapped[str] = mapped_column(String(20))
        __mapper_args__ = {"polymorphic_identity": "circle", "concrete": True}

    with pytest.raises(UnmappedClassError):
        Base.registry.mappers  # what SQLAlchemy itself says of the registry at this point
    yield Base
    Base.registry.dispose()
    # The abstract base's hook stays a listener of every later configuration of any registry
    # (SQLAlchemy 2.0), where it fails with its subclasses disposed: silence it.
    Shape.__declare_first__ = classmethod(lambda cls: None)


def test_writes_known_by_name_with_an_unmapped_class_around(app, pending_registry):
    pending_registry.metadata.create_all(app.engine)  # DDL: a write to every table it names
    with app.engine.begin() as conn:
        conn.execute(text("INSERT INTO um_circle (id, radius) VALUES (1, 'r')"))
    with app.Session() as s:
        s.execute(text("UPDATE sq_author SET name = 'Ann2' WHERE id = 1"))
        s.commit()
    with app.Session() as s:
        assert s.execute(select(Author).where(Author.id == 1).options(FromCache())).scalar_one().name == "Ann2"

