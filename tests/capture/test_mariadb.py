"""Capture triggers on MariaDB/MySQL, tested with PyMySQL directly (row triggers).

The feed and its lock table are created with the statements of the MySQL change feed
(``cachedeps_change`` with an AUTO_INCREMENT tid, ``cachedeps_change_lock`` with one row).
Each trigger first takes the lock row (``INSERT ... ON DUPLICATE KEY UPDATE``), which InnoDB
holds until the transaction ends: writers of captured tables are serialized from their
first captured row to their COMMIT, so tids are ordered like commits. The interleaved test
proves it: a transaction that captured a row first commits last, yet no poller that saw
the later tid could miss the earlier one.
"""

from __future__ import annotations

import os
import threading
import time
from urllib.parse import urlsplit

import pytest

from cachedeps import algebra, capture
from cachedeps.keys import canonical_value
from tests.conftest import require

from . import test_spelling

_URL = urlsplit(os.environ.get("CACHEDEPS_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test"))
MYSQL = dict(host=_URL.hostname or "127.0.0.1", user=_URL.username or "root", password=_URL.password or "",
             database=_URL.path.lstrip("/") or "test", port=_URL.port or 3306)
FEED_DDL = [
    "CREATE TABLE IF NOT EXISTS cachedeps_change (tid BIGINT AUTO_INCREMENT PRIMARY KEY, `key` VARCHAR(255) NOT NULL) "
    "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS cachedeps_change_lock (id TINYINT PRIMARY KEY) ENGINE=InnoDB",
    "INSERT IGNORE INTO cachedeps_change_lock (id) VALUES (1)",
]


def _connect():
    import pymysql

    return pymysql.connect(**MYSQL, charset="utf8mb4", autocommit=False)


class MyDb:
    """The interface of tests/capture/conftest.py's Db, for MariaDB."""

    dialect = "mysql"

    def __init__(self) -> None:
        self.connect = _connect
        self.conn = _connect()
        self.position = 0

    def run(self, *statements: str, params=()) -> None:
        with self.conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql, params) if params else cur.execute(sql)
        self.conn.commit()

    def rows(self, sql: str) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(sql)
            out = list(cur.fetchall())
        self.conn.commit()
        return out

    def new_keys(self) -> list[str]:
        got = self.rows(f"SELECT tid, `key` FROM cachedeps_change WHERE tid > {self.position} ORDER BY tid")
        if got:
            self.position = got[-1][0]
        return [k for _, k in got]

    def skip_to_head(self) -> None:
        self.position = self.rows("SELECT COALESCE(MAX(tid), 0) FROM cachedeps_change")[0][0]


def _reset(d: MyDb) -> None:
    tables = [r[0] for r in d.rows("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                                   "AND (TABLE_NAME LIKE 'cap\\_%' OR TABLE_NAME LIKE 'cachedeps\\_%')")]
    d.run("SET FOREIGN_KEY_CHECKS = 0", *[f"DROP TABLE IF EXISTS `{t}`" for t in tables], "SET FOREIGN_KEY_CHECKS = 1")


@pytest.fixture
def db():
    try:
        import pymysql  # noqa: F401
    except ImportError:
        require(False, "PyMySQL is not installed (pip install pymysql)")
    try:
        d = MyDb()
    except Exception as exc:  # noqa: BLE001 - the reason is shown
        require(False, f"MariaDB is not reachable at {MYSQL['host']}:3306 ({exc})")
    _reset(d)
    d.run(*FEED_DDL)
    yield d
    _reset(d)
    d.conn.close()


def test_every_kind_spelled_like_the_engine(db):
    test_spelling.test_every_kind_spelled_like_the_engine(db)


def test_multi_row_statement_gives_the_union_of_its_rows(db):
    test_spelling.test_multi_row_statement_gives_the_union_of_its_rows(db)


def test_text_primary_key_and_fallbacks(db):
    test_spelling.test_text_primary_key_and_fallbacks(db)


T = capture.describe("cap_item", "id", [("id", algebra.INTEGER), ("name", algebra.TEXT), ("n", algebra.INTEGER)])


@pytest.fixture
def item(db):
    db.run("CREATE TABLE cap_item (id INT PRIMARY KEY, name VARCHAR(100) COLLATE utf8mb4_bin, n INT) ENGINE=InnoDB")
    db.run("INSERT INTO cap_item VALUES (1, 'a', 0), (2, 'b', 0)")
    conn = _connect()
    capture.install(conn, "mysql", [T])
    conn.commit()
    conn.close()
    db.skip_to_head()
    return db


def test_install_twice_remove_and_drift(item):
    db = item
    trig = "SELECT TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"
    before = db.rows(trig)
    conn = _connect()
    capture.install(conn, "mysql", [T])
    conn.commit()
    assert db.rows(trig) == before and len(before) == 3
    db.run("ALTER TABLE cap_item ADD COLUMN color VARCHAR(10)")
    db.run("UPDATE cap_item SET color = 'red' WHERE id = 1")
    assert set(db.new_keys()) == {"cap_item", "cap_item:*"}
    (st,) = capture.status(conn, "mysql", [T])
    assert st.drift
    capture.remove(conn, "mysql")
    conn.commit()
    conn.close()
    assert db.rows(trig) == []
    db.run("UPDATE cap_item SET n = 5 WHERE id = 1")
    assert db.new_keys() == []


def test_rollback_leaves_no_keys(item):
    db = item
    conn = _connect()
    with conn.cursor() as cur:
        cur.execute("UPDATE cap_item SET name = 'gone' WHERE id = 1")
    conn.rollback()
    conn.close()
    assert db.new_keys() == []


def test_interleaved_writers_commit_in_tid_order(item):
    """A takes its tids, B waits for the lock row until A commits: B's tids are higher and
    a poller never sees B's rows without A's."""
    db = item
    a, b = _connect(), _connect()
    with a.cursor() as cur:
        cur.execute("UPDATE cap_item SET n = n + 1 WHERE id = 1")  # A captured, holds the lock row
    done = threading.Event()

    def writer_b():
        with b.cursor() as cur:
            cur.execute("UPDATE cap_item SET n = n + 1 WHERE id = 2")  # waits for A's lock row
        b.commit()
        done.set()

    t = threading.Thread(target=writer_b)
    t.start()
    time.sleep(0.5)
    assert not done.is_set(), "B must wait for A's transaction: the lock row serializes captured writers"
    assert db.new_keys() == []  # nothing visible yet: a poller finds no tid it could skip past
    a.commit()
    t.join(10)
    assert done.is_set()
    rows = db.rows(f"SELECT tid, `key` FROM cachedeps_change WHERE tid > {db.position} ORDER BY tid")
    a_tids = [tid for tid, k in rows if k == "cap_item:1"]
    b_tids = [tid for tid, k in rows if k == "cap_item:2"]
    assert a_tids and b_tids and max(a_tids) < min(b_tids)
    a.close()
    b.close()


def test_digest_matches_the_engine(db):
    long = "x y " * 40
    assert db.rows(f"SELECT CONCAT('#', LEFT(SHA2(CONVERT(_utf8mb4'{long}' USING utf8mb4), 256), 32))")[0][0] \
        == canonical_value(long)


def test_cascaded_foreign_key_actions_emit_the_affected_tables_keys(db):
    """InnoDB fires no trigger for rows a foreign key action changes: the parent's trigger
    writes the table keys of every table its actions reach, transitively (a grandchild
    whose column is SET NULL, a self-referencing tree)."""
    db.run("CREATE TABLE cap_parent (id INT PRIMARY KEY) ENGINE=InnoDB",
           "CREATE TABLE cap_child (id INT PRIMARY KEY, p INT, up INT, FOREIGN KEY (p) REFERENCES cap_parent (id) "
           "ON DELETE CASCADE, FOREIGN KEY (up) REFERENCES cap_child (id) ON DELETE CASCADE) ENGINE=InnoDB",
           "CREATE TABLE cap_grand (id INT PRIMARY KEY, c INT, FOREIGN KEY (c) REFERENCES cap_child (id) "
           "ON DELETE SET NULL) ENGINE=InnoDB",
           "CREATE TABLE cap_other (id INT PRIMARY KEY, p INT, FOREIGN KEY (p) REFERENCES cap_parent (id)) ENGINE=InnoDB",
           "INSERT INTO cap_parent VALUES (1), (2)", "INSERT INTO cap_child VALUES (1, 1, NULL), (2, 2, 1)",
           "INSERT INTO cap_grand VALUES (1, 2)")
    tables = [capture.describe(name, "id", cols) for name, cols in (
        ("cap_parent", [("id", algebra.INTEGER)]),
        ("cap_child", [("id", algebra.INTEGER), ("p", algebra.INTEGER), ("up", algebra.INTEGER)]),
        ("cap_grand", [("id", algebra.INTEGER), ("c", algebra.INTEGER)]),
        ("cap_other", [("id", algebra.INTEGER), ("p", algebra.INTEGER)]))]
    conn = _connect()
    capture.install(conn, "mysql", tables)
    conn.commit()
    conn.close()
    db.skip_to_head()
    db.run("DELETE FROM cap_parent WHERE id = 1")  # deletes child 1, child 2 (up = 1), nulls grand 1
    assert db.rows("SELECT c FROM cap_grand") == [(None,)]
    keys = set(db.new_keys())
    assert {"cap_parent:1", "cap_child", "cap_child:*", "cap_grand", "cap_grand:*"} <= keys
    assert not any(k.startswith("cap_other") for k in keys), "a RESTRICT constraint changes nothing"
    conn = _connect()
    st = {x.table: x for x in capture.status(conn, "mysql", tables)}
    conn.close()
    assert st["cap_parent"].cascades == ("cap_child", "cap_grand") and not st["cap_other"].cascades
    assert "table keys of cap_child, cap_grand" in st["cap_parent"].describe()
    db.run("INSERT INTO cap_parent VALUES (3)")
    assert not any(k.startswith("cap_child") for k in db.new_keys()), "an INSERT has no foreign key action"
