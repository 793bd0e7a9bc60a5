"""The sorting of ORM-suite failures into classes (tests/orm_suites/classify.py)."""

from __future__ import annotations

from tests.orm_suites.classify import classify

_UNDER_COUNT = (
    'File "lib/sqlalchemy/testing/assertions.py", line 1, in assert_sql_count\n'
    'File "/src/sqla_cachedeps/events.py", line 9, in _query\n'
)


def _entry(exc: str, frames: list[str]) -> dict:
    return {"id": "test/orm/test_x.py::T::test_y", "message": "boom", "traceback": _UNDER_COUNT,
            "exc": [exc], "frames": frames}


def test_a_failed_count_assertion_is_class_d():
    assert classify(_entry("builtins.AssertionError", []), {}, None)[0] == "d"


def test_an_error_inside_a_counting_test_is_not_explained_by_counting():
    # the Query.instances() crash hid this way: AttributeError under assert_sql_count
    assert classify(_entry("builtins.AttributeError", ["/src/sqla_cachedeps/events.py"]), {}, None)[0] == "b"
    assert classify(_entry("builtins.AttributeError", []), {}, None)[0] == "a"
