"""The version matrix: the Django and SQLAlchemy releases cachedeps is tested on, the results
of the matrix's runs, and README's compatibility table written from them.

``noxfile.py`` runs one session per combination (``nox -t matrix``; ``nox -t oldest`` and
``nox -t newest`` for the two ends, which CI runs) and records each result in
``.matrix-results/`` (tests that failed are run once more, and a pass then is reported as
such: the stale-read checker's runs need a minimum of work done in a few seconds, which a
machine under heavy load may not give them); ``nox -s table`` rewrites the table between the ``matrix`` markers of
README.md from those records (a combination with no record keeps its previous cell).
``tests/test_matrix.py`` checks that the table covers exactly the declared matrix.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

__all__ = [
    "PYTHON", "DJANGO", "SQLALCHEMY", "COMBINATIONS", "OLDEST", "NEWEST", "TEST_PATHS", "RESULTS",
    "README", "session_id", "failed_node_ids", "record", "load_results", "render_table", "read_table", "parse_cell",
    "write_readme",
]

ROOT = Path(__file__).resolve().parents[1]
PYTHON = "3.11"
DJANGO = ["4.2", "5.0", "5.1", "5.2"]
SQLALCHEMY = ["2.0", "2.1"]
COMBINATIONS = [(d, s) for d in DJANGO for s in SQLALCHEMY]
OLDEST = (DJANGO[0], SQLALCHEMY[0])
NEWEST = (DJANGO[-1], SQLALCHEMY[-1])
#: what each combination runs (the adapters' suites; the engine does not import either)
TEST_PATHS = ["tests/django", "tests/sqla"]
RESULTS = ROOT / ".matrix-results"
README = ROOT / "README.md"

_BEGIN = "<!-- matrix: begin (written by `nox -s table` from the results of `nox -t matrix`) -->"
_END = "<!-- matrix: end -->"
_CELL = re.compile(
    r"^(passed|FAILED): Django (\S+), SQLAlchemy (\S+), (\d+) tests(?:, (\d+) failed)?"
    r"(?:, (\d+) passed on a second try)? \((\d{4}-\d\d-\d\d)\)$"
)


def session_id(django: str, sqlalchemy: str) -> str:
    """Return the id of a combination's nox session (``tests-3.11(django4.2-sqla2.0)``)."""
    return f"django{django}-sqla{sqlalchemy}"


def _counts(junit: Path) -> dict[str, int]:
    root = ET.parse(junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        raise ValueError(f"no testsuite in {junit}")
    return {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}


def failed_node_ids(junit: Path, root: Path = ROOT) -> list[str]:
    """Return the pytest node ids of the tests that failed or errored in a JUnit XML report."""
    ids = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.find("failure") is None and case.find("error") is None:
            continue
        parts = (case.get("classname") or "").split(".")
        for i in range(len(parts), 0, -1):  # the longest dotted prefix that is a file is the module
            path = Path(*parts[:i]).with_suffix(".py")
            if (root / path).exists():
                ids.append("::".join([path.as_posix(), *parts[i:], case.get("name", "")]))
                break
    return list(dict.fromkeys(ids))


def record(
    django: str, sqlalchemy: str, junit: Path, installed: dict[str, str], day: str,
    directory: Path = RESULTS, second_try: Path | None = None,
) -> dict[str, Any]:
    """Write the result of one combination's run (pytest's JUnit XML) to ``directory``.

    ``second_try``: the report of a second run of the tests that failed in the first; those
    that passed then count as passed on a second try (the cell says how many), the others
    as failed.
    """
    counts = _counts(junit)
    flaky = 0
    failed = failed_node_ids(junit)
    if second_try is not None:
        failed = failed_node_ids(second_try)
        again = _counts(second_try)
        still = again["failures"] + again["errors"]
        flaky = counts["failures"] + counts["errors"] - still
        counts["failures"], counts["errors"] = still, 0
    result = {"django": django, "sqlalchemy": sqlalchemy, "installed": installed, "day": day, **counts,
              "second_try": flaky, "failed_tests": failed}
    directory.mkdir(exist_ok=True)
    (directory / f"{session_id(django, sqlalchemy)}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def load_results(directory: Path = RESULTS) -> dict[tuple[str, str], dict[str, Any]]:
    """Return the recorded results by ``(django, sqlalchemy)``."""
    out = {}
    for path in sorted(directory.glob("*.json")):
        result = json.loads(path.read_text())
        out[(result["django"], result["sqlalchemy"])] = result
    return out


def _cell(result: dict[str, Any]) -> str:
    failed = result["failures"] + result["errors"]
    ran = result["tests"] - result["skipped"]
    installed = result["installed"]
    head = "passed" if failed == 0 and ran > 0 else "FAILED"
    tail = f", {failed} failed" if failed else ""
    if result.get("second_try"):
        tail += f", {result['second_try']} passed on a second try"
    return f"{head}: Django {installed['django']}, SQLAlchemy {installed['sqlalchemy']}, {ran} tests{tail} ({result['day']})"


def render_table(results: dict[tuple[str, str], dict[str, Any]], previous: dict[tuple[str, str], str] | None = None) -> str:
    """Return the table block: one row per Django release, one column per SQLAlchemy release."""
    previous = previous or {}
    lines = [
        _BEGIN,
        "| Django \\ SQLAlchemy | " + " | ".join(SQLALCHEMY) + " |",
        "|---" * (len(SQLALCHEMY) + 1) + "|",
    ]
    for d in DJANGO:
        cells = []
        for s in SQLALCHEMY:
            result = results.get((d, s))
            cells.append(_cell(result) if result else previous.get((d, s), "not run"))
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    lines.append(_END)
    return "\n".join(lines)


def read_table(text: str) -> tuple[list[str], list[str], dict[tuple[str, str], str]]:
    """Parse README's table: (SQLAlchemy columns, Django rows, cells by (django, sqlalchemy)).

    Raises:
        ValueError: the markers or the table's shape are missing.
    """
    try:
        block = text[text.index(_BEGIN) + len(_BEGIN) : text.index(_END)]
    except ValueError:
        raise ValueError(f"README.md has no matrix table between {_BEGIN!r} and {_END!r}; run `nox -s table`") from None
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in block.strip().splitlines()]
    columns = rows[0][1:]
    django, cells = [], {}
    for row in rows[2:]:
        django.append(row[0])
        for s, cell in zip(columns, row[1:]):
            cells[(row[0], s)] = cell
    return columns, django, cells


def parse_cell(cell: str) -> dict[str, Any] | None:
    """Return a cell's outcome, installed versions, test count and day (None: not run)."""
    if cell == "not run":
        return None
    m = _CELL.match(cell)
    if m is None:
        raise ValueError(f"unreadable matrix cell {cell!r}")
    return {"outcome": m[1], "django": m[2], "sqlalchemy": m[3], "tests": int(m[4]),
            "failed": int(m[5] or 0), "second_try": int(m[6] or 0), "day": m[7]}


def write_readme(readme: Path = README, directory: Path = RESULTS) -> str:
    """Rewrite README's table from the recorded results; return the new table."""
    text = readme.read_text()
    _, _, previous = read_table(text)
    table = render_table(load_results(directory), previous)
    start, end = text.index(_BEGIN), text.index(_END) + len(_END)
    readme.write_text(text[:start] + table + text[end:])
    return table


if __name__ == "__main__":
    print(write_readme())
