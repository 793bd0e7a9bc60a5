"""Capture triggers with SQLAlchemy: writes from outside the application invalidate cached
reads (issue 10). Every cached read runs with ``verify=True``: a stale hit raises
:class:`~cachedeps.errors.StaleRead`, and each test first proves its read is a hit.

Runs on SQLite, PostgreSQL and MariaDB (``mysql+pymysql``; text columns with the ``utf8mb4_nopad_bin``
collation, so reads on them anchor on values, and one with the server's case-insensitive default).
Writers: a plain DB-API connection, the ``sqlite3``, ``psql`` and ``mariadb`` command-line clients, an
``ON DELETE CASCADE`` declared in the schema, a bulk UPDATE of 100,000 rows, TRUNCATE and
ALTER TABLE. A control without capture shows the same write served stale.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess

import pytest
from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, create_engine, event, func, select
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

import sqla_cachedeps
from cachedeps.errors import StaleRead
from sqla_cachedeps import FromCache
from tests.capture.conftest import make_db
from tests.conftest import mysql_params, mysql_sqlalchemy_url


class Base(DeclarativeBase):
    pass


class Owner(Base):
    __tablename__ = "cap_owner"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100).with_variant(mysql.VARCHAR(100, collation="utf8mb4_nopad_bin"), "mysql", "mariadb"))
    alias: Mapped[str | None] = mapped_column(String(100), nullable=True)  # MariaDB: the server's *_ci collation
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Pet(Base):
    __tablename__ = "cap_pet"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("cap_owner.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    weight: Mapped[float] = mapped_column(Float, default=1.0)


class App:
    """An application process: an engine, an installed session factory, its cache."""

    def __init__(self, db, capture: bool) -> None:
        if db.dialect == "sqlite":
            url = f"sqlite:///{db.url}"
        elif db.dialect == "mysql":
            url = mysql_sqlalchemy_url(db.database)
        else:
            url = "postgresql+psycopg://" + db.url.split("://", 1)[1]
        self.engine = create_engine(url)
        if db.dialect == "sqlite":
            event.listen(self.engine, "connect", lambda c, _: c.execute("PRAGMA foreign_keys = ON"))
        Base.metadata.create_all(self.engine)
        sqla_cachedeps.create_feed_table(self.engine)
        if capture:
            sqla_cachedeps.capture(self.engine, Base.metadata)
        self.Session = sessionmaker(self.engine)
        self.handle = sqla_cachedeps.install(self.Session, "embedded://", capture=capture, verify=True)

    def read(self, stmt):
        with self.Session() as s:
            return s.execute(stmt.options(FromCache())).all()

    def hits(self) -> int:
        return self.handle.cache.stats().get("hits", 0)

    def cached(self, stmt):
        """Read twice; assert the second read is a hit; return its rows."""
        first = self.read(stmt)
        before = self.hits()
        second = self.read(stmt)
        assert self.hits() > before, "the read must be served from the cache for the test to mean anything"
        assert second == first
        return second

    def close(self) -> None:
        self.handle.uninstall()
        self.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def db(request, tmp_path):
    """The capture fixture's databases, and the test MariaDB."""
    yield from make_db(request, tmp_path, request.param)


@pytest.fixture
def app(db):
    a = App(db, capture=True)
    a.db = db
    with a.Session.begin() as s:
        s.add_all([Owner(id=1, name="Ann Lee"), Owner(id=2, name="Bob")])
        s.add_all([Pet(id=1, owner_id=1, name="Rex"), Pet(id=2, owner_id=1, name="Tom"), Pet(id=3, owner_id=2, name="Kit")])
    yield a
    a.close()


def external(db, sql: str) -> None:
    """Run ``sql`` on a plain DB-API connection (no SQLAlchemy, no cachedeps)."""
    if db.dialect == "sqlite":
        conn = sqlite3.connect(db.url, timeout=30)
        conn.execute("PRAGMA foreign_keys = ON")
    elif db.dialect == "mysql":
        import pymysql  # the pure-Python driver: what a job without mysqlclient would use

        conn = pymysql.connect(**mysql_params())
    else:
        import psycopg

        conn = psycopg.connect(db.url)
    try:
        conn.cursor().execute(sql)
        conn.commit()
    finally:
        conn.close()


def client(db, sql: str) -> None:
    """Run ``sql`` with the database's command-line client."""
    tool = {"sqlite": "sqlite3", "mysql": "mariadb"}.get(db.dialect, "psql")
    if db.dialect == "mysql" and shutil.which(tool) is None:
        tool = "mysql"
    if shutil.which(tool) is None:
        pytest.skip(f"the {tool} command-line client is not installed")
    if db.dialect == "sqlite":
        args = [tool, db.url, "PRAGMA foreign_keys = ON; " + sql]
    elif db.dialect == "mysql":
        p = mysql_params()
        args = [tool, "-h", p["host"], "-P", str(p["port"]), "-u", p["user"], "--default-character-set=utf8mb4",
                *([f"-p{p['password']}"] if p["password"] else []), p["database"], "-e", sql]
    else:
        args = [tool, db.url, "-v", "ON_ERROR_STOP=1", "-c", sql]
    subprocess.run(args, check=True, capture_output=True, timeout=60)


NAME_OF_1 = select(Owner.name).where(Owner.id == 1)
PETS_OF_1 = select(Pet.name).where(Pet.owner_id == 1).order_by(Pet.name)
ACTIVE = select(func.count()).select_from(Owner).where(Owner.active.is_(True))


def test_control_without_capture_the_read_is_stale(db):
    a = App(db, capture=False)
    try:
        with a.Session.begin() as s:
            s.add(Owner(id=1, name="Ann Lee"))
        a.cached(NAME_OF_1)
        external(db, "UPDATE cap_owner SET name = 'Anne' WHERE id = 1")
        with pytest.raises(StaleRead):
            a.read(NAME_OF_1)
    finally:
        a.close()


def test_plain_dbapi_writes(app):
    assert app.cached(NAME_OF_1) == [("Ann Lee",)]
    app.cached(ACTIVE)
    external(app.db, "UPDATE cap_owner SET name = 'Anne Lee', active = false WHERE id = 1")
    assert app.read(NAME_OF_1) == [("Anne Lee",)]
    assert app.read(ACTIVE) == [(1,)]
    app.cached(PETS_OF_1)
    external(app.db, "INSERT INTO cap_pet (id, owner_id, name, weight) VALUES (9, 1, 'Ada', 2)")
    assert app.read(PETS_OF_1) == [("Ada",), ("Rex",), ("Tom",)]
    # a read anchored on a text value (MariaDB: the NO PAD binary collation): the trigger's key of the new value
    bobs = select(Owner.id).where(Owner.name == "Bob").order_by(Owner.id)
    assert app.cached(bobs) == [(2,)]
    external(app.db, "UPDATE cap_owner SET name = 'Bob' WHERE id = 1")
    assert app.read(bobs) == [(1,), (2,)]
    # a text column without a binary collation on MariaDB: reads on it depend on the table's keys
    by_alias = select(Owner.id).where(Owner.alias == "ann")
    assert app.cached(by_alias) == []
    external(app.db, "UPDATE cap_owner SET alias = 'ANN' WHERE id = 2")
    assert app.read(by_alias) == ([(2,)] if app.db.dialect == "mysql" else [])


def test_command_line_client(app):
    app.cached(NAME_OF_1)
    app.cached(PETS_OF_1)
    client(app.db, "UPDATE cap_owner SET name = 'Ann Ray' WHERE id = 1; DELETE FROM cap_pet WHERE name = 'Tom';")
    assert app.read(NAME_OF_1) == [("Ann Ray",)]
    assert app.read(PETS_OF_1) == [("Rex",)]


def test_on_delete_cascade(app):
    assert app.cached(PETS_OF_1) == [("Rex",), ("Tom",)]
    app.cached(select(Pet.name).where(Pet.id == 2))
    external(app.db, "DELETE FROM cap_owner WHERE id = 1")  # the database deletes the pets
    assert app.read(PETS_OF_1) == []
    assert app.read(select(Pet.name).where(Pet.id == 2)) == []


def test_an_orm_write_is_not_written_twice(app):
    conn = app.engine.raw_connection()
    try:
        cur = conn.cursor()
        cur.execute("SELECT COALESCE(MAX(tid), 0) FROM cachedeps_change")
        head = cur.fetchone()[0]
        conn.commit()
    finally:
        conn.close()
    with app.Session.begin() as s:
        s.get(Owner, 2).name = "Bobby"
    with app.engine.connect() as c:
        k = "`key`" if app.db.dialect == "mysql" else "key"
        keys = [r[0] for r in c.exec_driver_sql(f"SELECT {k} FROM cachedeps_change WHERE tid > {head}")]
    assert "cap_owner:2" in keys and "cap_owner/name" in keys
    assert len(keys) == len(set(keys))
    assert app.read(select(Owner.name).where(Owner.id == 2)) == [("Bobby",)]


def test_ddl_truncate_and_alter(app):
    if app.db.dialect != "postgresql":
        pytest.skip("TRUNCATE and event triggers are PostgreSQL's (SQLite's and MariaDB's DELETE fire row triggers)")
    app.cached(PETS_OF_1)
    external(app.db, "TRUNCATE cap_pet")
    assert app.read(PETS_OF_1) == []
    app.cached(NAME_OF_1)
    external(app.db, "ALTER TABLE cap_owner ADD COLUMN nick VARCHAR(20)")
    external(app.db, "UPDATE cap_owner SET name = 'Drifted' WHERE id = 1")  # table keys now
    assert app.read(NAME_OF_1) == [("Drifted",)]
    (st,) = [s for s in sqla_cachedeps.capture_status(app.engine, Base.metadata) if s.table == "cap_owner"]
    assert st.drift


def _bulk(app, rows: int) -> None:
    if app.db.dialect == "sqlite":
        external(app.db, f"WITH RECURSIVE s(x) AS (SELECT 100 UNION ALL SELECT x + 1 FROM s WHERE x < {rows + 99}) "
                         "INSERT INTO cap_pet (id, owner_id, name, weight) SELECT x, 2, 'pet ' || x, 1 FROM s")
    elif app.db.dialect == "mysql":  # MariaDB's SEQUENCE engine
        external(app.db, f"INSERT INTO cap_pet (id, owner_id, name, weight) "
                         f"SELECT seq, 2, CONCAT('pet ', seq), 1 FROM seq_100_to_{rows + 99}")
    else:
        external(app.db, f"INSERT INTO cap_pet (id, owner_id, name, weight) "
                         f"SELECT x, 2, 'pet ' || x, 1 FROM generate_series(100, {rows + 99}) x")


@pytest.mark.slow
def test_bulk_update_of_100000_rows(app):
    _bulk(app, 100_000)
    heavy = select(func.count()).select_from(Pet).where(Pet.weight > 1)
    one = select(Pet.weight).where(Pet.id == 5000)
    assert app.cached(heavy) == [(0,)]
    assert app.cached(one) == [(1.0,)]
    external(app.db, "UPDATE cap_pet SET weight = weight + 1 WHERE owner_id = 2")
    assert app.read(heavy) == [(100_001,)]
    assert app.read(one) == [(2.0,)]


def test_bulk_update_over_the_row_limit(app):
    _bulk(app, 1500)  # over capture.MAX_ROWS: PostgreSQL emits the table keys
    one = select(Pet.weight).where(Pet.id == 1000)
    assert app.cached(one) == [(1.0,)]
    external(app.db, "UPDATE cap_pet SET weight = weight + 1 WHERE owner_id = 2")
    assert app.read(one) == [(2.0,)]
