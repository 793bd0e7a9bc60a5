"""Capture triggers emit exactly the keys the engine's write_keys gives for the same rows,
for every kind of the type table, on SQLite and PostgreSQL (writes through plain DB-API)."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from cachedeps import algebra, capture

TEXTS = [
    "plain", "with space", "", "x" * 64, "y" * 65, "café", "naïve words", "\u00a0nbsp", "emoji\U0001f600",
    "quote'd", "tab\there", "null", None, "日本語" * 30, "#hash", "a/b=c:d.e", "\u200bzero", "é" * 64,
]
INTS = [0, -7, 2**62, None, 42]
BOOLS = [True, False, None]
UUIDS = [uuid.UUID("12345678-1234-5678-1234-567812345678"), None, uuid.uuid4()]


def _columns(dialect: str) -> list[tuple[str, str, str]]:
    """(name, SQL type, kind) of the test table."""
    pg = dialect == "postgresql"
    if dialect == "mysql":
        return [
            ("id", "BIGINT PRIMARY KEY", algebra.INTEGER),
            ("n", "BIGINT", algebra.INTEGER),
            ("b", "BOOLEAN", algebra.BOOLEAN),
            ("s", "VARCHAR(300) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", algebra.TEXT),
            ("u", "CHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", algebra.TEXT),
            ("f", "DOUBLE", algebra.OTHER),
            ("d", "DATE", algebra.OTHER),
        ]
    return [
        ("id", "INTEGER PRIMARY KEY" if not pg else "BIGINT PRIMARY KEY", algebra.INTEGER),
        ("n", "BIGINT" if pg else "INTEGER", algebra.INTEGER),
        ("b", "BOOLEAN" if pg else "BOOL", algebra.BOOLEAN),
        ("s", "TEXT" if pg else "VARCHAR(300)", algebra.TEXT),
        ("u", "UUID" if pg else "CHAR(36)", algebra.UUID if pg else algebra.TEXT),
        ("f", "DOUBLE PRECISION" if pg else "REAL", algebra.OTHER),
        ("d", "DATE", algebra.OTHER),
    ]


def _table(dialect: str, name: str = "cap_kinds") -> capture.CaptureTable:
    return capture.describe(name, "id", [(n, k) for n, _, k in _columns(dialect)])


def _create(db, name: str = "cap_kinds") -> capture.CaptureTable:
    cols = ", ".join(f"{n} {t}" for n, t, _ in _columns(db.dialect))
    db.run(f"CREATE TABLE {name} ({cols})")
    table = _table(db.dialect, name)
    conn = db.connect()
    capture.install(conn, db.dialect, [table])
    conn.commit()
    conn.close()
    return table


def _digest(text: str) -> str:
    return "#" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def expected(db, table: capture.CaptureTable, old, new) -> tuple[set[str], set[str]]:
    """Return (keys the engine emits that a reader can depend on, allowed alternatives).

    ``old``/``new``: rows as the driver returns them (database values) or None.
    """
    names = [c.name for c in table.columns]
    unspelled = set(table.unspelled())
    o = dict(zip(names, old)) if old else None
    n = dict(zip(names, new)) if new else None
    if db.dialect in ("sqlite", "mysql"):  # as stored: the UUID column holds text
        for row in (o, n):
            if row and isinstance(row.get("u"), uuid.UUID):
                row["u"] = str(row["u"])
    pk = (o or n)["id"]
    keys = algebra.write_keys(table.name, pk, o, n)
    keep = {k for k in keys if not any(k.startswith(f"{table.name}.{c}=") for c in unspelled)}
    alts = set()
    for row in (o, n):
        for c in ("s",):
            v = row and row.get(c)
            if isinstance(v, str) and not v.isascii() and len(v) <= 64:
                # PostgreSQL and MySQL cannot tell Python's printability of non-ASCII text: it emits
                # both the text and its digest (one of them the engine's spelling)
                from cachedeps.keys import canonical_value

                spelled = f"{table.name}.{c}={canonical_value(v)}"
                for k in keep:
                    if k == spelled or k.startswith(spelled + "/"):
                        for alt in (v, _digest(v)):
                            alts.add(f"{table.name}.{c}={alt}" + k[len(spelled):])
    return keep, alts


def _check(db, table, old, new) -> None:
    got = db.new_keys()
    want, alts = expected(db, table, old, new)
    assert want - set(got) == set(), f"missing keys for {old} -> {new}"
    assert set(got) - want - alts == set(), f"unexpected keys for {old} -> {new}"
    assert len(got) == len(set(got)), "a statement's keys are written once each"


def _row(db, pk):
    rows = db.rows(f"SELECT id, n, b, s, u, f, d FROM cap_kinds WHERE id = {pk}")
    return rows[0] if rows else None


def _p(db) -> str:
    return "?" if db.dialect == "sqlite" else "%s"


def test_every_kind_spelled_like_the_engine(db):
    table = _create(db)
    db.skip_to_head()
    p = _p(db)
    values = []
    for i in range(max(len(TEXTS), len(INTS))):
        u = UUIDS[i % len(UUIDS)]
        values.append((i + 1, INTS[i % len(INTS)], BOOLS[i % len(BOOLS)], TEXTS[i % len(TEXTS)],
                       str(u) if (u and db.dialect != "postgresql") else u, 1.5 * i, "2024-01-0%d" % (i % 9 + 1)))
    for v in values:  # insert, one row per statement
        db.run(f"INSERT INTO cap_kinds VALUES ({', '.join([p] * 7)})", params=v)
        _check(db, table, None, _row(db, v[0]))
    for i, v in enumerate(values):  # update text and integer together, then only an unspelled column
        before = _row(db, v[0])
        new_text = TEXTS[(i + 5) % len(TEXTS)]
        db.run(f"UPDATE cap_kinds SET s = {p}, n = n + 1 WHERE id = {v[0]}", params=(new_text,))
        _check(db, table, before, _row(db, v[0]))
        before = _row(db, v[0])
        db.run(f"UPDATE cap_kinds SET f = f + 1 WHERE id = {v[0]}")
        _check(db, table, before, _row(db, v[0]))
    before = _row(db, 3)  # an update that changes nothing
    db.run("UPDATE cap_kinds SET n = n WHERE id = 3")
    _check(db, table, before, _row(db, 3))
    for v in values[:5]:
        before = _row(db, v[0])
        db.run(f"DELETE FROM cap_kinds WHERE id = {v[0]}")
        _check(db, table, before, None)


def test_multi_row_statement_gives_the_union_of_its_rows(db):
    table = _create(db)
    db.run("INSERT INTO cap_kinds (id, n, s) VALUES (1, 1, 'a'), (2, 1, 'b b'), (3, 2, 'c')")
    db.skip_to_head()
    before = {r[0]: r for r in db.rows("SELECT id, n, b, s, u, f, d FROM cap_kinds")}
    db.run("UPDATE cap_kinds SET s = CONCAT(s, '!') WHERE n = 1" if db.dialect == "mysql" else
           "UPDATE cap_kinds SET s = s || '!' WHERE n = 1")
    got = set(db.new_keys())
    want: set[str] = set()
    alts: set[str] = set()
    for pk in (1, 2):
        w, a = expected(db, table, before[pk], _row(db, pk))
        want |= w
        alts |= a
    assert want <= got <= want | alts
    assert "cap_kinds:3" not in got


def test_text_primary_key_and_fallbacks(db):
    db.run("CREATE TABLE cap_code (code VARCHAR(80) PRIMARY KEY, v INTEGER)")
    db.run("CREATE TABLE cap_nopk (a INTEGER, b INTEGER)")
    db.run("CREATE TABLE cap_pair (a INTEGER, b INTEGER, PRIMARY KEY (a, b))")
    tables = [
        capture.describe("cap_code", "code", [("code", algebra.TEXT), ("v", algebra.INTEGER)]),
        capture.describe("cap_nopk", None, [("a", algebra.INTEGER), ("b", algebra.INTEGER)]),
        capture.describe("cap_pair", ["a", "b"], [("a", algebra.INTEGER), ("b", algebra.INTEGER)]),
    ]
    conn = db.connect()
    capture.install(conn, db.dialect, tables)
    conn.commit()
    found = {s.table: s for s in capture.status(conn, db.dialect, tables)}
    conn.close()
    assert found["cap_nopk"].fallback == "no primary key"
    assert found["cap_pair"].fallback == "composite primary key"
    assert found["cap_code"].fallback is None and found["cap_code"].ok
    db.skip_to_head()
    p = _p(db)
    db.run(f"INSERT INTO cap_code VALUES ({p}, {p})", params=("two words", 1))
    got = set(db.new_keys())
    want = set(algebra.write_keys("cap_code", "two words", None, {"code": "two words", "v": 1}))
    assert want <= got
    assert f"cap_code:{_digest('two words')}" in got
    db.run("INSERT INTO cap_nopk VALUES (1, 2)")
    assert set(db.new_keys()) == {"cap_nopk", "cap_nopk:*"}
    db.run("UPDATE cap_pair SET b = 3 WHERE a = 1")  # no row: nothing to say
    assert db.new_keys() == []
    db.run("INSERT INTO cap_pair VALUES (1, 2)")
    assert set(db.new_keys()) == {"cap_pair", "cap_pair:*"}


def test_kinds_table_covers_every_dialect():
    for kind in algebra.KINDS:
        assert set(capture.SPELLING[kind]) == {"postgresql", "sqlite", "mysql"}, kind


def test_sqlalchemy_kinds_of_mysql_text_columns():
    """The kind sqla_cachedeps gives a column decides both what reads anchor on and what its
    triggers spell: on MySQL only a declared binary collation is exact text, also when the
    type is a ``with_variant`` (which the column's own type does not show)."""
    from sqlalchemy import String
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    from cachedeps import algebra
    from sqla_cachedeps.spelling import type_kind

    binary = String(60).with_variant(mysql.VARCHAR(60, collation="utf8mb4_nopad_bin"), "mysql", "mariadb")
    assert type_kind(binary, mysql.dialect()) == algebra.TEXT
    assert type_kind(binary, sqlite.dialect()) == algebra.TEXT
    assert type_kind(String(60), mysql.dialect()) == algebra.OTHER  # the server's default: *_ci, PAD SPACE
    assert type_kind(String(60, collation="utf8mb4_general_ci"), mysql.dialect()) == algebra.OTHER
    ci = String(60).with_variant(mysql.VARCHAR(60, collation="utf8mb4_unicode_ci"), "mysql")
    assert type_kind(ci, mysql.dialect()) == algebra.OTHER
    assert type_kind(ci, postgresql.dialect()) == algebra.TEXT
