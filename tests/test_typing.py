"""The ``cachedeps`` package type-checks cleanly under mypy (settings: ``[tool.mypy]``)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from tests.conftest import require

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_reports_no_errors_in_cachedeps() -> None:
    require(importlib.util.find_spec("mypy") is not None,
            "mypy is not installed (pip install -e '.[test]')")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "cachedeps"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, (
        f"mypy exited {result.returncode}:\n{result.stdout}{result.stderr}"
    )
