"""Install, remove, status, drift, rollbacks, TRUNCATE and DDL of capture triggers."""

from __future__ import annotations

import pytest

from cachedeps import algebra, capture

T = capture.describe("cap_item", "id", [("id", algebra.INTEGER), ("name", algebra.TEXT), ("price", algebra.OTHER)])


def _install(db, tables=(T,)):
    conn = db.connect()
    capture.install(conn, db.dialect, list(tables))
    conn.commit()
    conn.close()


def _objects(db) -> set[str]:
    """Every trigger, function and event trigger of capture in the database."""
    if db.dialect == "sqlite":
        return {r[0] for r in db.rows("SELECT name FROM sqlite_master WHERE name LIKE 'cachedeps_cap%'")}
    rows = db.rows(
        "SELECT 'trigger ' || tgname FROM pg_trigger WHERE tgname LIKE 'cachedeps%' "
        "UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE proname LIKE 'cachedeps%' "
        "UNION ALL SELECT 'event ' || evtname FROM pg_event_trigger WHERE evtname LIKE 'cachedeps%' "
        "UNION ALL SELECT 'table ' || tablename FROM pg_tables WHERE tablename LIKE 'cachedeps_capture%'")
    return {r[0] for r in rows}


@pytest.fixture
def item(db):
    db.run("CREATE TABLE cap_item (id INTEGER PRIMARY KEY, name VARCHAR(100), price REAL)")
    db.run("INSERT INTO cap_item VALUES (1, 'a', 1.5)")
    _install(db)
    db.skip_to_head()
    return db


def test_install_twice_is_a_noop_and_remove_leaves_nothing(item):
    db = item
    before = _objects(db)
    _install(db)
    assert _objects(db) == before
    db.run("UPDATE cap_item SET name = 'b' WHERE id = 1")
    keys = db.new_keys()
    assert len(keys) == len(set(keys)) and "cap_item:1" in keys
    conn = db.connect()
    capture.remove(conn, db.dialect)
    conn.commit()
    assert _objects(db) == set()
    if db.dialect == "postgresql":
        assert not db.rows("SELECT 1 FROM pg_tables WHERE tablename LIKE 'cachedeps_capture%'")
    db.run("UPDATE cap_item SET name = 'c' WHERE id = 1")
    assert db.new_keys() == []  # no capture: the write is invisible to the feed again
    (st,) = capture.status(db.connect(), db.dialect, [T])
    assert not st.installed


def test_rollbacks_leave_no_keys(item):
    db = item
    conn = db.connect()
    cur = conn.cursor()
    cur.execute("UPDATE cap_item SET name = 'gone' WHERE id = 1")
    conn.rollback()
    cur.execute("INSERT INTO cap_item VALUES (2, 'kept', 1)")
    cur.execute("SAVEPOINT s")
    cur.execute("INSERT INTO cap_item VALUES (3, 'undone', 1)")
    cur.execute("ROLLBACK TO SAVEPOINT s")
    conn.commit()
    conn.close()
    keys = set(db.new_keys())
    assert "cap_item:2" in keys and "cap_item.name=kept" in keys
    assert "cap_item:3" not in keys and "cap_item.name=gone" not in keys
    if db.dialect == "postgresql":
        assert db.rows("SELECT count(*) FROM cachedeps_capture_stage")[0][0] == 0
        assert db.rows("SELECT count(*) FROM cachedeps_capture_tx")[0][0] == 0


def test_drift_falls_back_to_table_keys_and_status_says_so(item):
    db = item
    db.run("ALTER TABLE cap_item ADD COLUMN color VARCHAR(10)")
    db.new_keys()  # the DDL itself (PostgreSQL's event trigger)
    db.run("UPDATE cap_item SET color = 'red' WHERE id = 1")
    assert set(db.new_keys()) == {"cap_item", "cap_item:*"}
    (st,) = capture.status(db.connect(), db.dialect, [T])
    assert st.installed and st.drift and "color" in st.describe()
    again = capture.describe("cap_item", "id", [*[(c.name, c.kind) for c in T.columns], ("color", algebra.TEXT)])
    _install(db, [again])
    (st,) = capture.status(db.connect(), db.dialect, [again])
    assert st.ok
    db.run("UPDATE cap_item SET color = 'blue' WHERE id = 1")
    assert "cap_item.color=blue" in db.new_keys()


def test_status_reports_unspelled_columns(item):
    (st,) = capture.status(item.connect(), item.dialect, [T])
    assert st.ok and st.unspelled == ("price",)
    assert "price" in st.describe()


def test_truncate_and_ddl_emit_table_keys(item):
    db = item
    if db.dialect == "sqlite":
        db.run("DELETE FROM cap_item")  # SQLite's TRUNCATE: row triggers fire
        assert "cap_item:1" in db.new_keys()
        return
    db.run("TRUNCATE cap_item")
    assert set(db.new_keys()) == {"cap_item", "cap_item:*"}
    db.run("ALTER TABLE cap_item ALTER COLUMN name TYPE VARCHAR(200)")
    assert set(db.new_keys()) == {"cap_item", "cap_item:*"}
    db.run("DROP TABLE cap_item")
    assert set(db.new_keys()) == {"cap_item", "cap_item:*"}


def test_large_statement_emits_table_keys(item):
    db = item
    db.run(f"WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x < {capture.MAX_ROWS + 5}) "
           "INSERT INTO cap_item SELECT 10 + x, 'n', 0 FROM s" if db.dialect == "sqlite" else
           f"INSERT INTO cap_item SELECT 10 + x, 'n', 0 FROM generate_series(0, {capture.MAX_ROWS + 5}) x")
    keys = set(db.new_keys())
    if db.dialect == "postgresql":
        assert keys == {"cap_item", "cap_item:*"}
    else:  # row triggers: every row's keys
        assert "cap_item:1010" in keys
