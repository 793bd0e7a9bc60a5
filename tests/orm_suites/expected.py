"""Failures of the ORMs' own tests under cachedeps that are explained, each with its class
(see :mod:`tests.orm_suites.classify`) and the reason. A test listed here that passes is
fine; a failure not listed (and not query counting) fails the harness."""

from __future__ import annotations

__all__ = ["DJANGO", "SQLA"]

_FEED_LAST = "asserts on the last captured statement; cachedeps' feed statements come after the write"
_OLD_ROWS_FIRST = "asserts on the first captured statement; cachedeps reads the rows a write changes first"

#: Django test id -> (class, reason); a subtest matches its test's id
DJANGO: dict[str, tuple[str, str]] = {
    "queries.test_db_returning.ReturningValuesTests.test_insert_returning": ("d", _FEED_LAST),
    "queries.test_db_returning.ReturningValuesTests.test_insert_returning_multiple": ("d", _FEED_LAST),
    "queries.test_explain.ExplainTests.test_basic": (
        "d", "asserts the first captured statement is the EXPLAIN; the feed poll runs first"),
    "model_inheritance.tests.ModelInheritanceTests.test_create_child_no_update": ("d", _OLD_ROWS_FIRST),
    "model_inheritance.tests.ModelInheritanceTests.test_update_parent_filtering": ("d", _OLD_ROWS_FIRST),
}

#: SQLAlchemy test node id -> (class, reason); a parametrized test matches its base id
SQLA: dict[str, tuple[str, str]] = {
    "test/orm/test_expire.py::ExpireTest::test_load_only_relationships": (
        "d", "[*-no_attrs-not_pk_plus_pending-*-joined] checks that refresh() put the joined-eager "
        "collection in __dict__; a refresh served from the cached row state fills the column "
        "attributes only and the collection loads lazily on access (same rows, one query later)"),
}
