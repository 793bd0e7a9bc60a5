"""Fixtures for the SQLAlchemy adapter: databases (SQLite file, PostgreSQL schema), stores
(embedded, memcached), a model, installed session factories and a statement counter."""

from __future__ import annotations

import itertools
import os
import uuid

import pytest


def pytest_configure(config):
    # dogpile.cache's shipped backend suite marks some of its tests with this marker.
    config.addinivalue_line("markers", "time_intensive: dogpile.cache suite tests that sleep")


def pytest_collection_modifyitems(config, items):
    # dogpile's thread-heavy tests run for seconds each: they belong with the slow runs.
    for item in items:
        if item.get_closest_marker("time_intensive") is not None:
            item.add_marker(pytest.mark.slow)


from sqlalchemy import create_engine, event, text  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

import cachedeps  # noqa: E402
import sqla_cachedeps  # noqa: E402
from sqla_cachedeps.feed import feed_for_dialect  # noqa: E402
from sqla_cachedeps.verify import VERIFY_OPTION  # noqa: E402

from tests.conftest import mysql_sqlalchemy_url  # noqa: E402

from .models import Author, Base, Book  # noqa: E402

_counter = itertools.count()


def pg_sqlalchemy_url(dsn: str) -> str:
    """Return the SQLAlchemy URL (psycopg 3 driver) of a libpq DSN."""
    return "postgresql+psycopg://" + dsn.split("://", 1)[1]


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def db(request, tmp_path):
    """An empty database: a SQLite file, a private schema in the test PostgreSQL, or a
    private database on the test MariaDB (through PyMySQL).

    Yields ``(url, connect_args)``.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'app.sqlite'}", {}
        return
    if request.param == "mysql":
        request.getfixturevalue("mysql_url")
        from tests.conftest import mysql_connect

        name = f"sqla_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        admin = mysql_connect(autocommit=True)
        admin.cursor().execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        try:
            yield mysql_sqlalchemy_url(name), {}
        finally:
            admin.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
            admin.close()
        return
    dsn = request.getfixturevalue("postgres_dsn")
    schema = f"sqla_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = pg_sqlalchemy_url(dsn)
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    yield url, {"options": f"-csearch_path={schema}"}
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(params=["embedded", "memcached"])
def store(request):
    """A store shared by every cache of the test (one per simulated process)."""
    if request.param == "embedded":
        s = cachedeps.open_store("embedded://")
    else:
        server = request.getfixturevalue("memcached")
        try:
            s = cachedeps.open_store(server.url)
        except ImportError as exc:  # the remote store module is not there yet
            pytest.skip(f"remote store unavailable: {exc}")
    yield s
    s.close()


@pytest.fixture
def engine(db):
    url, connect_args = db
    eng = create_engine(url, connect_args=connect_args)
    Base.metadata.create_all(eng)
    sqla_cachedeps.create_feed_table(eng)
    yield eng
    eng.dispose()


def _sqlite_foreign_keys(dbapi_conn, record) -> None:
    dbapi_conn.execute("PRAGMA foreign_keys = ON")  # ON DELETE CASCADE as on PostgreSQL


class App:
    """One simulated process: an engine, a session factory and its own Cache (delta maps)."""

    def __init__(self, url: str, connect_args: dict, store, namespace: str, session_class=None,
                 **install_kw) -> None:
        self.engine = create_engine(url, connect_args=connect_args)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_foreign_keys)
        self.Session = sessionmaker(self.engine, **({"class_": session_class} if session_class else {}))
        self.cache = cachedeps.Cache(store, feed=feed_for_dialect(self.engine.dialect), namespace=namespace)
        install_kw.setdefault("verify", True)  # every hit is checked against the database
        self.handle = sqla_cachedeps.install(self.Session, self.cache, **install_kw)
        self.selects: list[str] = []
        event.listen(self.engine, "before_cursor_execute", self._count)

    def _count(self, conn, cursor, statement, parameters, context, executemany):
        if context is not None and context.execution_options.get(VERIFY_OPTION):
            return  # verify mode's own check of a hit
        if statement.lstrip().upper().startswith("SELECT"):
            self.selects.append(statement)

    def close(self) -> None:
        self.handle.uninstall()
        self.engine.dispose()


@pytest.fixture
def make_app(db, engine, store):
    """Build apps (simulated processes) on the test database and store."""
    url, connect_args = db
    namespace = f"t{os.getpid()}x{next(_counter)}:"
    apps: list[App] = []

    def make(**install_kw) -> App:
        app = App(url, connect_args, store, namespace, **install_kw)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture
def app(make_app):
    """One app with two authors and three books."""
    a = make_app()
    with a.Session.begin() as s:
        ann = Author(id=1, name="Ann")
        bob = Author(id=2, name="Bob")
        s.add_all([ann, bob])
        s.add_all([
            Book(id=1, title="A1", author=ann, pages=10),
            Book(id=2, title="A2", author=ann, pages=20),
            Book(id=3, title="B1", author=bob, pages=30),
        ])
    a.selects.clear()
    return a
