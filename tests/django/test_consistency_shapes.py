"""The stale-read checker on the query shapes, column types and write paths that broke the
promise before (issue: anti-joins, JSON, collations, raw SQL with comments, cross-ORM enum
and UUID spellings).

Writer processes bump item ``i`` from version ``v`` to ``v + 1`` in one transaction that
writes every shape of :mod:`tests.django.checkapp.models`: writer 0 through the Django ORM
and raw SQL on a Django cursor, writer 1 through SQLAlchemy sessions with
``sqla_cachedeps`` installed (ORM inserts, an ORM bulk update, ``text()`` SQL). Reader
processes read through the Django ORM with every model cached, one shape per read, and
each shape spells the version on its own:

- ``SLOTS - count(slots of i without a fill)``: an anti-join over a LEFT OUTER JOIN;
- ``count(flags of i whose data.done = true)``: JSON ``1`` becoming ``true``;
- ``count(words named "word<i>")``: a case-insensitive collation, written in capitals;
- ``counter.version``: changed only by raw SQL starting with a comment;
- ``count(paints of color "C<i>")``, ``count(marks of uid U<i>)``: an enum and a UUID,
  written by SQLAlchemy's types and read by Django's.

Zero stale reads allowed, on a SQLite file, on PostgreSQL and on MariaDB (its collation a
``_ci`` one, PAD SPACE), with memcached.
"""

from __future__ import annotations

import enum
import os
import random
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import JSON, BigInteger, Enum, ForeignKey, Integer, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tests.django._checker_db import fresh_mysql_database, fresh_pg_database
from tests.consistency import checker

pytestmark = pytest.mark.memcached
ON_POSTGRESQL = os.environ.get("CACHEDEPS_TEST_DB", "sqlite") == "postgresql"
ON_MYSQL = os.environ.get("CACHEDEPS_TEST_DB", "sqlite") == "mysql"

ITEMS = 4
SLOTS = 400
UIDS = [uuid.UUID(int=0xC0FFEE00 + i) for i in range(ITEMS)]
SHAPES = ("anti-join", "json", "collation", "raw-sql", "enum", "uuid")


class Color(enum.Enum):
    C0 = "zero"
    C1 = "one"
    C2 = "two"
    C3 = "three"


# The checker's tables as SQLAlchemy maps them (writer 1).
class _Base(DeclarativeBase):
    pass


class SaSlot(_Base):
    __tablename__ = "check_slot"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    item: Mapped[int] = mapped_column(Integer)
    n: Mapped[int] = mapped_column(Integer)


class SaFill(_Base):
    __tablename__ = "check_fill"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("check_slot.id"))


class SaFlag(_Base):
    __tablename__ = "check_flag"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    item: Mapped[int] = mapped_column(Integer)
    n: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict] = mapped_column(JSON)


class SaWord(_Base):
    __tablename__ = "check_word"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    item: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(50))


class SaPaint(_Base):
    __tablename__ = "check_paint"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    color: Mapped[Color] = mapped_column(Enum(Color, native_enum=False, length=10))


class SaMark(_Base):
    __tablename__ = "check_mark"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    uid: Mapped[uuid.UUID] = mapped_column(Uuid)



def _setup_django(ctx: dict) -> None:
    os.environ.update(ctx["env"])
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.django.settings"
    import django

    django.setup()


def _django_writer():
    from django.db import connection, transaction

    from tests.django.checkapp.models import Counter, Fill, Flag, Mark, Paint, Slot, Word

    def write(item: int) -> int:
        with transaction.atomic():
            version = Counter.objects.select_for_update().get(item=item).version
            if version >= SLOTS - 1:
                return version
            with connection.cursor() as cursor:
                cursor.execute("/* checker */ UPDATE check_counter SET version = version + 1 WHERE item = %s", [item])
            Fill.objects.create(slot=Slot.objects.get(item=item, n=version))
            Flag.objects.filter(item=item, n=version).update(data={"done": True})
            Word.objects.create(item=item, name=f"WORD{item}")
            Paint.objects.create(color=Color[f"C{item}"].name)
            Mark.objects.create(uid=UIDS[item])
        return version + 1

    return write


def _sqlalchemy_writer(ctx: dict):
    from django.db import connection
    from sqlalchemy import create_engine, select, text, update
    from sqlalchemy.orm import sessionmaker

    import cachedeps
    import sqla_cachedeps
    from sqla_cachedeps.feed import feed_for_dialect

    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        engine = create_engine(f"sqlite:///{settings['NAME']}", connect_args={"timeout": 30})
    elif connection.vendor == "mysql":
        from tests.conftest import mysql_sqlalchemy_url

        engine = create_engine(mysql_sqlalchemy_url(settings["NAME"]))
    else:
        engine = create_engine(f"postgresql+psycopg://{settings['USER']}@127.0.0.1:5432/{settings['NAME']}")
    factory = sessionmaker(engine)
    cache = cachedeps.Cache(ctx["env"]["CACHEDEPS_TEST_STORE"], feed=feed_for_dialect(engine.dialect))
    sqla_cachedeps.install(factory, cache)
    with factory() as s:  # warm up (connection, first poll) before the run's clock starts
        s.execute(select(SaSlot.id).limit(1)).all()

    def write(item: int) -> int:
        with factory.begin() as s:
            if engine.dialect.name == "sqlite":
                s.execute(text("UPDATE check_counter SET version = version WHERE item = :i"), {"i": item})  # take the write lock
                version = s.execute(text("SELECT version FROM check_counter WHERE item = :i"), {"i": item}).scalar_one()
            else:
                version = s.execute(
                    text("SELECT version FROM check_counter WHERE item = :i FOR UPDATE"), {"i": item}
                ).scalar_one()
            if version >= SLOTS - 1:
                return version
            s.execute(text("-- checker\nUPDATE check_counter SET version = version + 1 WHERE item = :i"), {"i": item})
            slot = s.execute(select(SaSlot).where(SaSlot.item == item, SaSlot.n == version)).scalar_one()
            s.add(SaFill(slot_id=slot.id))
            flag_id = s.execute(select(SaFlag.id).where(SaFlag.item == item, SaFlag.n == version)).scalar_one()
            s.execute(update(SaFlag), [{"id": flag_id, "data": {"done": True}}])
            s.add(SaWord(item=item, name=f"WORD{item}"))
            s.add(SaPaint(color=Color[f"C{item}"]))
            s.add(SaMark(uid=UIDS[item]))
        return version + 1

    return write


def make_writer(ctx: dict, index: int):
    """Return a write(item) bumping the item's version in every shape, in one transaction."""
    _setup_django(ctx)
    from django.db import connection

    from cachedeps.sqlclass import classify
    from django_cachedeps import runtime

    # Warm up before the run's clock starts: a loaded machine otherwise spends the short run
    # starting up (the connection, the first poll, the raw-SQL classifier's dialect).
    runtime.ensure_polled("default")
    classify("UPDATE check_counter SET version = version + 1", connection.vendor)
    return _django_writer() if index % 2 == 0 else _sqlalchemy_writer(ctx)


def make_reader(ctx: dict, index: int):
    """Return a read(item) through Django's cached ORM, one shape per read."""
    _setup_django(ctx)
    from django_cachedeps import runtime
    from tests.django.checkapp.models import Counter, Flag, Mark, Paint, Slot, Word

    rng = random.Random(index)
    shapes = ctx.get("shapes", SHAPES)

    def read(item: int) -> int:
        shape = rng.choice(shapes)
        if shape == "anti-join":
            return SLOTS - Slot.objects.filter(item=item, fills__isnull=True).count()
        if shape == "json":
            return Flag.objects.filter(item=item, data__done=True).count()
        if shape == "collation":
            return Word.objects.filter(name=f"word{item}").count()
        if shape == "raw-sql":
            return Counter.objects.filter(item=item).values_list("version", flat=True)[0]
        if shape == "enum":
            return Paint.objects.filter(color=f"C{item}").count()
        return Mark.objects.filter(uid=UIDS[item]).count()

    read.stats = lambda: runtime.get_engine().stats()  # type: ignore[attr-defined]
    runtime.ensure_polled("default")  # warm up (imports, connection) before the clock starts
    Counter.objects.filter(item=0).count()
    return read


def _prepare(env: dict) -> None:
    """Migrate the database and create the items, in a child process with ``env``."""
    code = (
        "import os, django; os.environ['DJANGO_SETTINGS_MODULE']='tests.django.settings'; django.setup();"
        "from django.core.management import call_command; call_command('migrate', verbosity=0);"
        "from tests.django.checkapp.models import Counter, Flag, Slot;"
        f"Counter.objects.bulk_create([Counter(item=i) for i in range({ITEMS})]);"
        f"Slot.objects.bulk_create([Slot(item=i, n=n) for i in range({ITEMS}) for n in range({SLOTS})]);"
        f"Flag.objects.bulk_create([Flag(item=i, n=n, data={{'done': 1}}) for i in range({ITEMS}) for n in range({SLOTS})])"
    )
    subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, check=True, cwd=os.getcwd())


def _check(env: dict, memcached) -> None:
    env = {**env, "CACHEDEPS_TEST_STORE": memcached.url}
    _prepare(env)
    # CACHEDEPS_CHECK_SHAPES=json,enum narrows the readers to some shapes (to find which broke).
    shapes = tuple(os.environ.get("CACHEDEPS_CHECK_SHAPES", ",".join(SHAPES)).split(","))
    report = checker.run(make_writer, make_reader, {"env": env, "shapes": shapes}, writers=2, readers=2, items=ITEMS, duration=3.0, min_writes=5)
    print(report.summary())
    report.assert_ok(min_reads=50, min_writes=5)
    assert report.counters.get("hits", 0) > 0, "readers should have been served from the cache"


@pytest.mark.skipif(ON_POSTGRESQL or ON_MYSQL, reason="the SQLite run of the Django suite covers SQLite")
def test_no_stale_reads_on_the_shapes_sqlite_file(tmp_path, memcached):
    memcached.restart()
    _check({"CACHEDEPS_TEST_DB": "sqlite", "CACHEDEPS_TEST_SQLITE_FILE": str(tmp_path / "db.sqlite3")}, memcached)


@pytest.mark.skipif(not ON_POSTGRESQL, reason="runs in the PostgreSQL run (CACHEDEPS_TEST_DB=postgresql)")
def test_no_stale_reads_on_the_shapes_postgresql(postgres_dsn, memcached):
    memcached.restart()
    with fresh_pg_database() as env:
        _check(env, memcached)


@pytest.mark.mysql
@pytest.mark.skipif(not ON_MYSQL, reason="runs in the MariaDB run (CACHEDEPS_TEST_DB=mysql)")
def test_no_stale_reads_on_the_shapes_mariadb(mysql_url, memcached):
    memcached.restart()
    with fresh_mysql_database() as env:
        _check(env, memcached)
