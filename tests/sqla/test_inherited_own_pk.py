"""Joined-table inheritance where the subclass table has a primary key of its own, not the
one the mapper's identity names (``SQLAlchemy test/orm/test_naturalpks.py``'s
``JoinedInheritancePKOnFKTest``): the rows a flush changes in that table cannot be read by
the identity's values. Reading them so read another row (equal values, other meaning) and
published its keys instead of the changed row's, or failed on PostgreSQL (``integer =
character varying``); the table's writes emit its table keys instead."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, String, Table, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, registry

from sqla_cachedeps.writes import _addressable


class IBase(DeclarativeBase):
    pass


class Staff(IBase):
    __tablename__ = "sq_staff"
    pid: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(20))
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "staff"}


class Coder(Staff):
    __tablename__ = "sq_coder"
    # its own primary key; the row is joined to its Staff row by staff_pid
    eid = Column(Integer, primary_key=True, autoincrement=False)
    staff_pid = Column(ForeignKey("sq_staff.pid"), nullable=False)
    language = Column(String(20))
    __mapper_args__ = {"polymorphic_identity": "coder"}


class Person(IBase):
    __tablename__ = "sq_person"
    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "person"}


class Engineer(Person):
    __tablename__ = "sq_engineer"
    id = Column(Integer, primary_key=True, autoincrement=False)
    person_name = Column(String(50), ForeignKey("sq_person.name", onupdate="CASCADE"))
    language = Column(String(20))
    __mapper_args__ = {"polymorphic_identity": "engineer"}


def _tables(app):
    IBase.metadata.create_all(app.engine)


def test_a_subclass_table_with_its_own_primary_key_is_not_addressed_by_the_identity():
    assert _addressable(Coder.__mapper__, Staff.__table__)
    assert not _addressable(Coder.__mapper__, Coder.__table__)
    assert _addressable(Staff.__mapper__, Staff.__table__)


def test_a_grandchild_table_keyed_through_its_parent_is_addressed():
    from sqlalchemy import MetaData, Table
    from sqlalchemy.orm import registry

    md = MetaData()
    p = Table("p", md, Column("id", Integer, primary_key=True), Column("kind", String(10)))
    c = Table("c", md, Column("id", Integer, ForeignKey("p.id"), primary_key=True))
    g = Table("g", md, Column("id", Integer, ForeignKey("c.id"), primary_key=True))
    reg = registry()
    P = type("P", (), {})
    C = type("C", (P,), {})
    G = type("G", (C,), {})
    reg.map_imperatively(P, p, polymorphic_on=p.c.kind, polymorphic_identity="p")
    reg.map_imperatively(C, c, inherits=P, polymorphic_identity="c")
    mapper = reg.map_imperatively(G, g, inherits=C, polymorphic_identity="g")
    reg.configure()
    # g.id equals c.id (g's inherit condition), which equals p.id (c's): both steps followed
    assert all(_addressable(mapper, t) for t in (p, c, g))


def test_update_of_a_row_whose_own_key_differs_from_the_identity(make_app):
    app = make_app()
    _tables(app)
    with app.Session.begin() as s:
        # Coder pid=1 is the sq_coder row eid=2; the row eid=1 belongs to pid=2
        s.add_all([Coder(pid=1, eid=2, language="java"), Coder(pid=2, eid=1, language="python")])
    coder = Coder.__table__
    # a read of the subclass table alone: it depends on that table's rows, not on a join (an
    # ORM statement: a select of tables alone runs as Core, uncached)
    java = select(coder.c.staff_pid).where(Coder.language == "java").execution_options(cachedeps=True)
    hits = app.cache.stats()["hits"]
    with app.Session() as s:
        assert s.scalars(java).all() == [1]
        assert s.scalars(java).all() == [1]
    assert app.cache.stats()["hits"] == hits + 1
    with app.Session.begin() as s:
        s.get(Coder, 1).language = "c++"
    other = make_app()  # another process: only the change feed tells it
    for a in (app, other):
        with a.Session() as s:
            assert s.scalars(java).all() == []


def test_primary_key_change_over_a_subclass_table_with_its_own_key(make_app):
    app = make_app()
    _tables(app)
    with app.Session.begin() as s:
        s.add(Engineer(name="dilbert", id=7, language="java"))
    names = select(Engineer.person_name).where(Engineer.language == "c++").execution_options(cachedeps=True)
    with app.Session() as s:
        assert s.scalars(names).all() == []
    with app.Session.begin() as s:
        e = s.get(Engineer, "dilbert")
        e.name = "wally"
        e.language = "c++"
    with app.Session() as s:
        assert s.scalars(names).all() == ["wally"]
        assert s.get(Engineer, "wally").language == "c++"



class Region(IBase):
    __tablename__ = "sq_region"
    name: Mapped[str] = mapped_column(String(50), primary_key=True)


class Office(IBase):
    __tablename__ = "sq_office"
    name: Mapped[str] = mapped_column(
        String(50), ForeignKey("sq_region.name", onupdate="CASCADE"), primary_key=True)


# A third level no class maps, keyed to the second level's key, which the first one's cascades.
Desk = Table("sq_desk", IBase.metadata, Column("id", Integer, primary_key=True, autoincrement=False),
             Column("office", String(50), ForeignKey("sq_office.name", onupdate="CASCADE", ondelete="CASCADE")))


def test_cascades_reach_every_level_the_database_changes():
    from sqla_cachedeps.analysis import cascaded_tables

    # sq_region.name -> sq_office.name (ON UPDATE CASCADE) -> sq_desk.office (ON UPDATE CASCADE)
    assert dict(cascaded_tables(Region.__table__, delete=False)) == {"sq_office": ["name"], "sq_desk": ["name"]}
    assert cascaded_tables(Region.__table__, delete=True) == []  # no ON DELETE action on sq_region
    assert dict(cascaded_tables(Office.__table__, delete=True)) == {"sq_desk": ["name"]}


def test_key_change_cascaded_two_levels_down(make_app):
    app = make_app()
    _tables(app)
    with app.Session.begin() as s:
        s.add(Region(name="north"))
        s.flush()
        s.add(Office(name="north"))
        s.flush()
        s.execute(Desk.insert().values(id=1, office="north"))
    # read through a class mapped to the table for this read only, in a registry of its own
    # (a select of tables alone runs as Core, uncached; sq_desk stays unmapped in IBase's)
    reg = registry()

    class DeskRow:
        pass

    reg.map_imperatively(DeskRow, Desk)
    desks = select(DeskRow.office).execution_options(cachedeps=True)
    hits = app.cache.stats()["hits"]
    with app.Session() as s:
        assert s.scalars(desks).all() == ["north"]
        assert s.scalars(desks).all() == ["north"]
    assert app.cache.stats()["hits"] == hits + 1
    with app.Session.begin() as s:
        s.get(Region, "north").name = "south"  # the database renames sq_office's and sq_desk's rows
    other = make_app()  # another process: only the change feed tells it
    for a in (app, other):
        with a.Session() as s:
            assert s.scalars(desks).all() == ["south"]
    reg.dispose()


def test_foreign_keys_to_tables_the_metadata_does_not_hold_are_not_followed():
    """A foreign key naming a table of another MetaData (or none yet) is no action on this
    table's rows: following cascades must not resolve it (SQLAlchemy raises
    NoReferencedTableError there, through every flush)."""
    from sqlalchemy import MetaData

    from sqla_cachedeps.analysis import cascaded_tables

    md = MetaData()
    x = Table("x", md, Column("id", Integer, primary_key=True))
    Table("b", md, Column("id", Integer, primary_key=True), Column("a_id", ForeignKey("a.id")),
          Column("a2_id", ForeignKey("a.id", ondelete="CASCADE")))
    Table("c", md, Column("id", Integer, primary_key=True), Column("x_id", ForeignKey("x.id", ondelete="CASCADE")))
    assert cascaded_tables(x, delete=True) == [("c", ["id"])]
    assert cascaded_tables(x, delete=False) == []
