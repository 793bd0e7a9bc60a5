"""The version matrix: Django 4.2-5.2 x SQLAlchemy 2.0-2.1 on Python 3.11 (tests/matrix.py).

    nox -t matrix          # every combination, each in a virtualenv of its own
    nox -t oldest          # Django 4.2 + SQLAlchemy 2.0 (CI runs it: make test)
    nox -t newest          # Django 5.2 + SQLAlchemy 2.1
    nox -s table           # README's compatibility table from the recorded results

Each combination runs tests/django and tests/sqla without the slow tests (extra pytest
arguments after ``--`` replace those paths) and records its result in .matrix-results/; the
tests that failed run once more, and the table counts those that pass then apart.
"""

from __future__ import annotations

import datetime
import os
import sys
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tests import matrix  # noqa: E402

nox.options.sessions = []  # nothing by default: name a tag or a session
nox.options.reuse_venv = "yes"
#: more failures than this are not a flaky test or two: no second try. None in CI: a test
#: that fails there once fails the run, as in the main run.
MAX_SECOND_TRIES = 0 if os.environ.get("CI", "").lower() in ("1", "true", "yes") else 10


def _tags(combo: tuple[str, str]) -> list[str]:
    tags = ["matrix"]
    if combo == matrix.OLDEST:
        tags.append("oldest")
    if combo == matrix.NEWEST:
        tags.append("newest")
    return tags


@nox.session(python=matrix.PYTHON)
@nox.parametrize(
    ["django", "sqlalchemy"],
    [nox.param(d, s, id=matrix.session_id(d, s), tags=_tags((d, s))) for d, s in matrix.COMBINATIONS],
)
def tests(session: nox.Session, django: str, sqlalchemy: str) -> None:
    """Run the adapters' tests on one Django and one SQLAlchemy release."""
    session.install("-e", ".[test]", f"Django~={django}.0", f"SQLAlchemy~={sqlalchemy}.0")
    installed = session.run(
        "python", "-c",
        "import django, sqlalchemy, platform; print(django.__version__, sqlalchemy.__version__, platform.python_version())",
        silent=True,
    )
    django_v, sqla_v, python_v = str(installed).split()[-3:]
    junit = Path(session.create_tmp()) / "junit.xml"
    args = session.posargs or [*matrix.TEST_PATHS, "-m", "not slow"]
    session.run(
        "python", "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={junit}", *args,
        success_codes=[0, 1],  # failures are recorded first, then fail the session below
    )
    if not junit.exists():
        session.error("pytest wrote no report (a collection or start-up error above)")
    if session.posargs:
        return  # a partial run: not the matrix's result
    second_try = None
    failed = matrix.failed_node_ids(junit)
    if 0 < len(failed) <= MAX_SECOND_TRIES:
        second_try = junit.with_name("junit-second-try.xml")
        session.log(f"running the {len(failed)} failed test(s) once more")
        session.run(
            "python", "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={second_try}", *failed,
            success_codes=[0, 1],
        )
    result = matrix.record(
        django, sqlalchemy, junit, {"django": django_v, "sqlalchemy": sqla_v, "python": python_v},
        datetime.date.today().isoformat(), second_try=second_try,
    )
    session.log(f"recorded: {result}")
    if result["failures"] or result["errors"] or result["tests"] == result["skipped"]:
        session.error(f"tests failed on Django {django_v} + SQLAlchemy {sqla_v}")


@nox.session(python=False)
def table(session: nox.Session) -> None:
    """Rewrite README's compatibility table from the results in .matrix-results/."""
    session.log("\n" + matrix.write_readme())
