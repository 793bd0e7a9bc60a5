"""Django's and SQLAlchemy's own tests through cachedeps (verify mode on where the code has it).

The short subset runs in ``make test``; the whole list is marked slow (``make test-slow``).
Each run must show no stale read, no wrong result and no crash inside cachedeps: every
failure is of an explained class (the plain backend fails it too, or it counts queries), see
:mod:`tests.orm_suites.classify` and :mod:`tests.orm_suites.expected`.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import IN_CI, MYSQL_URL, PG_DSN, mysql_available

from . import classify, expected
from .run import DJANGO_CI, DJANGO_MODULES, print_summary, run_django
from .sdist import SdistUnavailable, source_tree
from .sqla import SQLA_CI, SQLA_PATHS, run_sqla


def _need_sdist(dist: str) -> None:
    try:
        source_tree(dist)
    except SdistUnavailable as exc:
        if IN_CI:
            pytest.fail(f"{exc} (PyPI must be reachable under CI=true)")
        pytest.skip(str(exc))


def _pg_available() -> bool:
    try:
        import psycopg

        psycopg.connect(PG_DSN, connect_timeout=3).close()
        return True
    except Exception:
        return False


def _need_server(db: str) -> None:
    """Skip (fail under CI) when the run's database server is not reachable."""
    missing = {"postgresql": (_pg_available, PG_DSN), "mysql": (mysql_available, MYSQL_URL)}.get(db)
    if missing is None or missing[0]():
        return
    if IN_CI:
        pytest.fail(f"{db} unreachable at {missing[1]}")
    pytest.skip(f"{db} unreachable at {missing[1]}")


def _check(report: dict, table: dict, *, exercised: bool) -> None:
    summary = classify.summarize(report["outcomes"], table, None, report.get("mode"))
    print_summary(report, summary)
    bad = [i for i in summary["items"] if i["class"] in ("a", "b")]
    lines = [f"[{i['class']}] {i['id']}: {i['why']}\n{i.get('traceback', '')[-1500:]}" for i in bad]
    assert not bad, f"{len(bad)} failure(s) caused by cachedeps:\n" + "\n".join(lines)
    assert report["tests_run"] > 0
    if exercised:
        stats = report["stats"]
        assert stats.get("hits", 0) > 0 and stats.get("sets", 0) > 0, f"the cache was not exercised: {stats}"


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("mode", ["testcase", "autocommit"])
def test_django_suite_subset(mode: str) -> None:
    _need_sdist("Django")
    report = run_django(DJANGO_CI, mode=mode)
    _check(report, expected.DJANGO, exercised=mode == "autocommit")


@pytest.mark.timeout(1200)
def test_sqlalchemy_suite_subset() -> None:
    _need_sdist("SQLAlchemy")
    report = run_sqla(SQLA_CI)
    _check(report, expected.SQLA, exercised=True)


@pytest.mark.slow
@pytest.mark.timeout(3 * 3600)
@pytest.mark.parametrize("db", ["sqlite", "postgresql", "mysql"])
@pytest.mark.parametrize("mode", ["testcase", "autocommit"])
def test_django_suite_all(db: str, mode: str) -> None:
    _need_sdist("Django")
    _need_server(db)
    report = run_django(DJANGO_MODULES, db=db, mode=mode)
    _check(report, expected.DJANGO, exercised=mode == "autocommit")


@pytest.mark.slow
@pytest.mark.timeout(7200)
@pytest.mark.parametrize("db", ["sqlite", "postgresql", "mysql"])
def test_sqlalchemy_suite_all(db: str) -> None:
    _need_sdist("SQLAlchemy")
    _need_server(db)
    report = run_sqla(SQLA_PATHS, db=db)
    _check(report, expected.SQLA, exercised=True)
