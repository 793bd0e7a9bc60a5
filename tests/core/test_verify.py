"""cachedeps.verify: row comparison without false alarms, and the StaleRead report."""

from __future__ import annotations

import datetime
import decimal
import logging

import pytest

from cachedeps.errors import CachedepsError, ConfigurationError, StaleRead
from cachedeps.verify import Verifier, compare_rows, sql_shape

from ._support import write


def test_rows_compare_by_type_and_value():
    assert compare_rows([(1,)], [(True,)]) is not None  # JSON 1 became true
    assert compare_rows([(1,)], [(1.0,)]) is not None
    assert compare_rows([(decimal.Decimal("1.50"),)], [(decimal.Decimal("1.5"),)]) is None
    assert compare_rows([[memoryview(b"x"), [1, 2]]], [(b"x", (1, 2))]) is None
    assert compare_rows([(float("nan"),)], [(float("nan"),)]) is None
    utc = datetime.timezone.utc
    plus1 = datetime.timezone(datetime.timedelta(hours=1))
    assert compare_rows([(datetime.datetime(2024, 1, 1, 12, tzinfo=utc),)],
                        [(datetime.datetime(2024, 1, 1, 13, tzinfo=plus1),)]) is None


def test_row_order_and_limits():
    a, b = [(1,), (2,), (2,)], [(2,), (1,), (2,)]
    assert compare_rows(a, b) is None
    assert compare_rows(a, [(1,), (2,)]) is not None  # multisets: a lost duplicate shows
    assert compare_rows([(1,), (2,)], [(3,), (4,)], limited=2) is None  # any two rows
    assert compare_rows([(1,)], [(3,), (4,)], limited=2) is not None
    assert compare_rows([(1,)], [(3,)], limited=5) is not None  # not binding: the whole set


def test_sql_shape_reads_the_top_level_only():
    assert sql_shape("SELECT a FROM t WHERE b IN (SELECT b FROM u ORDER BY b LIMIT 3)") == (False, None)
    assert sql_shape('SELECT "order by" FROM t ORDER BY a LIMIT 21') == (True, 21)
    assert sql_shape("SELECT a FROM t LIMIT %s OFFSET %s") == (False, -1)
    assert sql_shape("SELECT 'it''s (' FROM t ORDER BY 1") == (True, None)


def test_verifier_raises_or_logs(caplog):
    with pytest.raises(StaleRead) as info:
        Verifier(True).check("SELECT 1", [(1,)], [(2,)], deps=["book:1"], stamp=3, position=5)
    err = info.value
    assert isinstance(err, CachedepsError) and isinstance(err, AssertionError)
    assert (err.query, err.deps, err.stamp, err.position) == ("SELECT 1", ("book:1",), 3, 5)
    assert "book:1" in str(err) and "stamp 3" in str(err) and "position read 5" in str(err)
    with caplog.at_level(logging.ERROR, logger="cachedeps.verify"):
        assert not Verifier(1.0).check("SELECT 1", [(1,)], [(2,)])
    assert "stale cache hit" in caplog.text
    v = Verifier(True)
    assert v.check("q", [(1,)], [(2,)], concurrent=lambda: True) and v.check("q", [(1,)], [(1,)])
    assert (v.checked, v.excused, v.reported) == (2, 1, 0)
    assert not Verifier(False).enabled and not Verifier(0).sample()
    for bad in ("yes", 1.5, -1):
        with pytest.raises(ConfigurationError):
            Verifier(bad)


def test_changed_after_sees_concurrent_writes_of_the_keys(pair):
    conn, feed, a, _ = pair
    position = a.current_tid
    write(conn, feed, ["book", "book:2"])
    assert not a.changed_after(conn, position, ["book:1"])
    assert a.changed_after(conn, position, ["book:2"])
