"""README's compatibility table covers exactly the declared version matrix (tests/matrix.py,
run by noxfile.py), each cell reads as a result of that combination, and the lower bounds
pyproject.toml declares are the matrix's oldest releases."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

from tests import matrix


def test_readme_table_covers_the_declared_matrix():
    columns, rows, cells = matrix.read_table(matrix.README.read_text())
    assert columns == matrix.SQLALCHEMY
    assert rows == matrix.DJANGO
    assert set(cells) == set(matrix.COMBINATIONS)


def test_each_cell_is_a_result_of_its_own_combination():
    _, _, cells = matrix.read_table(matrix.README.read_text())
    for (django, sqlalchemy), cell in cells.items():
        result = matrix.parse_cell(cell)
        if result is None:
            continue
        assert result["django"].startswith(django + "."), (django, cell)
        assert result["sqlalchemy"].startswith(sqlalchemy + "."), (sqlalchemy, cell)
        assert result["tests"] > 0
        assert (result["outcome"] == "passed") == (result["failed"] == 0), cell


def test_the_oldest_and_newest_combinations_have_run():
    _, _, cells = matrix.read_table(matrix.README.read_text())
    for combo in (matrix.OLDEST, matrix.NEWEST):
        assert matrix.parse_cell(cells[combo]) is not None, f"{combo} has no result: run nox -t oldest -t newest"


def test_declared_lower_bounds_are_the_oldest_tested_releases():
    project = tomllib.loads((matrix.ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert f"Django>={matrix.OLDEST[0]}" in extras["django"]
    assert f"SQLAlchemy>={matrix.OLDEST[1]}" in extras["sqlalchemy"]
    assert project["requires-python"] == f">={matrix.PYTHON}"


def test_table_is_written_from_recorded_results(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n\n" + matrix.render_table({}) + "\n\nafter\n")
    results = tmp_path / "results"
    results.mkdir()
    marker = tmp_path / "tried"
    (tmp_path / "test_probe.py").write_text(
        "import pathlib, pytest\n"
        "def test_a(): pass\n"
        "def test_b(): pass\n"
        "def test_c(): assert False\n"
        "class TestFlaky:\n"
        f"    def test_d(self):\n"
        f"        marker = pathlib.Path({str(marker)!r})\n"
        "        if not marker.exists():\n"
        "            marker.touch()\n"
        "            assert False, 'first try'\n"
        "@pytest.mark.skip('no')\n"
        "def test_e(): pass\n"
    )

    def pytest_run(junit, *args):
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:django",
                               f"--junitxml={junit}", *args], cwd=tmp_path, capture_output=True, text=True)
        assert junit.exists(), done.stdout + done.stderr

    junit, again = tmp_path / "junit.xml", tmp_path / "again.xml"
    pytest_run(junit, "test_probe.py")
    failed = matrix.failed_node_ids(junit, tmp_path)
    assert failed == ["test_probe.py::test_c", "test_probe.py::TestFlaky::test_d"]
    pytest_run(again, *failed)
    django, sqlalchemy = matrix.OLDEST
    matrix.record(django, sqlalchemy, junit, {"django": f"{django}.9", "sqlalchemy": f"{sqlalchemy}.7"},
                  "2026-01-02", results, second_try=again)
    matrix.write_readme(readme, results)
    text = readme.read_text()
    assert text.startswith("intro\n\n") and text.endswith("\n\nafter\n")
    _, _, cells = matrix.read_table(text)
    assert matrix.parse_cell(cells[matrix.OLDEST]) == {
        "outcome": "FAILED", "django": f"{django}.9", "sqlalchemy": f"{sqlalchemy}.7", "tests": 4, "failed": 1,
        "second_try": 1, "day": "2026-01-02",
    }
    assert cells[matrix.NEWEST] == "not run"
    assert re.search(r"\| 4\.2 \| FAILED", text)
