"""Sort the failures of a suite run into classes.

- ``a`` (stale): ``StaleRead`` from verify mode, or a failure that only cachedeps has and
  that nothing else explains — treated as a wrong result until shown otherwise.
- ``b`` (crash): an error only cachedeps has, raised by or through cachedeps' own code.
- ``c`` (plain): the stock backend fails the same way (seen in a ``--compare`` run or listed
  in :mod:`tests.orm_suites.expected`).
- ``d`` (counts): the test counts or inspects the queries it ran (``assertNumQueries``,
  captured SQL) and failed that assertion; a hit skips a query, or cachedeps adds its own
  (the feed poll, the read of the rows a write changes, the feed append). Another error
  raised inside such a test is ``b`` or ``a``.

``a`` and ``b`` are defects to fix; ``c`` and ``d`` are explained, listed with a reason.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

__all__ = ["CLASSES", "classify", "summarize"]

CLASSES = {
    "a": "stale read or wrong result caused by cachedeps",
    "b": "crash inside cachedeps",
    "c": "fails with the plain backend too",
    "d": "counts or inspects queries; hits skip some, cachedeps adds its own (feed poll, old-row read)",
}

_OURS = ("/cachedeps/", "/django_cachedeps/", "/sqla_cachedeps/")
_OUR_EXC = ("cachedeps.", "django_cachedeps.", "sqla_cachedeps.")
_COUNTS = re.compile(
    r"queries executed, \d+ expected|assertNumQueries|captured_queries|connection\.queries"
    r"|assert_sql_count|desired statement count|assert_sql_execution|Testing for compiled statement|assert_statement_count|CompiledSQL|AllOf\(|count_statements"
    r"|Additional SQL statements remain"
)


def _is_ours(frame: str) -> bool:
    return any(part in frame for part in _OURS) and "/tests/orm_suites/" not in frame


# SQLAlchemy's per-backend test classes: "UpdateDeleteTest_sqlite+pysqlite_3_40_1"
_BACKEND_SUFFIX = re.compile(r"_[a-z0-9]+\+[a-z0-9]+(?:_\d+)*(?=::|$)")


def _base(tid: str) -> str:
    # a Django subtest "test (x=1)" or a pytest parametrization "test[a-b]": the test's own id
    return _BACKEND_SUFFIX.sub("", tid.split(" (", 1)[0].split("[", 1)[0])


def _listed(tid: str, expected: dict[str, tuple], mode: str | None = None) -> tuple[str, str] | None:
    """Return ``(class, reason)`` of a listed test (or of its test class); an entry's optional
    third item names the modes it applies to (``{"autocommit"}``)."""
    base = _base(tid)
    for candidate in (tid, base, base.rsplit("::", 1)[0], base.rsplit(".", 1)[0]):  # test, then class
        entry = expected.get(candidate)
        if entry is not None:
            break
    else:
        return None
    if len(entry) > 2 and mode is not None and mode not in entry[2]:
        return None
    return entry[0], entry[1]


def classify(entry: dict[str, Any], expected: dict[str, tuple], plain_failed: Iterable[str] | None,
             mode: str | None = None) -> tuple[str, str]:
    """Return ``(class, reason)`` for one failed or errored test of a cachedeps run."""
    text = entry.get("message", "") + "\n" + entry.get("traceback", "")
    names = entry.get("exc", [])
    if any(n.endswith("StaleRead") for n in names) or "StaleRead" in text:
        return "a", "StaleRead"
    tid = entry["id"]
    listed = _listed(tid, expected, mode)
    if listed is not None:
        return listed
    if plain_failed is not None and tid in set(plain_failed):
        return "c", "fails with the plain backend too (compare run)"
    if _COUNTS.search(text) and (not names or names[0].endswith("AssertionError")):
        # a count or captured-SQL assertion that failed; an error of another kind raised
        # inside such a test (under assert_sql_count, say) is not explained by counting
        return "d", "counts queries"
    if any(n.startswith(_OUR_EXC) for n in names) or any(_is_ours(f) for f in entry.get("frames", [])):
        return "b", f"{names[0] if names else 'error'} through cachedeps code"
    return "a", "fails only under cachedeps; not explained"


def summarize(outcomes: list[dict[str, Any]], expected: dict[str, tuple],
              plain_failed: Iterable[str] | None, mode: str | None = None) -> dict[str, Any]:
    """Classify every failure/error; return counts per class and the classified entries."""
    plain = None if plain_failed is None else set(plain_failed)
    counts = dict.fromkeys(CLASSES, 0)
    items = []
    other = {"skip": 0, "expected_failure": 0, "unexpected_success": 0}
    for entry in outcomes:
        if entry["outcome"] in other:
            other[entry["outcome"]] += 1
            continue
        cls, reason = classify(entry, expected, plain, mode)
        counts[cls] += 1
        listed = _listed(entry["id"], expected, mode) is not None
        items.append({**entry, "class": cls, "why": reason, "listed": listed})
    return {"counts": counts, "items": items, **other}
