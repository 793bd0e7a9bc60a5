"""A ``DiscoverRunner`` that records every test's outcome and the engines' counters as JSON.

The report (``ORM_SUITE_REPORT``) lists each test that did not pass with its outcome, the
exception's type and traceback text; ``stats`` sums the counters of every engine the run
built (engines are rebuilt when a test overrides DATABASES/CACHES, so they are collected
from :func:`django_cachedeps.runtime._build`).
"""

from __future__ import annotations

import json
import os
import traceback
import unittest
from typing import Any

from django.test.runner import DiscoverRunner

__all__ = ["RecordingRunner", "RecordingResult", "ENGINES"]

#: every engine built during the run (filled by django_boot's patch of runtime._build)
ENGINES: list[Any] = []
_OUTCOMES: list[dict[str, Any]] = []


def _chain_names(exc: BaseException | None) -> list[str]:
    names = []
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        names.append(type(exc).__module__ + "." + type(exc).__qualname__)
        exc = exc.__cause__ or exc.__context__
    return names


class RecordingResult(unittest.TextTestResult):
    """Keep a JSON-friendly record of every non-passing outcome."""

    def _record(self, test: Any, outcome: str, err: Any = None, reason: str = "") -> None:
        entry: dict[str, Any] = {"id": test.id(), "outcome": outcome}
        if err is not None:
            exc = err[1]
            entry["exc"] = _chain_names(exc)
            entry["message"] = str(exc)[:3000]
            entry["traceback"] = "".join(traceback.format_exception(*err))[-12000:]
            tb = err[2]
            frames = traceback.extract_tb(tb) if tb is not None else []
            entry["frames"] = [f"{f.filename}:{f.lineno}:{f.name}" for f in frames][-12:]
        if reason:
            entry["reason"] = str(reason)[:500]
        _OUTCOMES.append(entry)

    def addError(self, test: Any, err: Any) -> None:
        super().addError(test, err)
        self._record(test, "error", err)

    def addFailure(self, test: Any, err: Any) -> None:
        super().addFailure(test, err)
        self._record(test, "failure", err)

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self._record(subtest, "failure" if failed else "error", err)

    def addSkip(self, test: Any, reason: str) -> None:
        super().addSkip(test, reason)
        self._record(test, "skip", reason=reason)

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._record(test, "expected_failure")

    def addUnexpectedSuccess(self, test: Any) -> None:
        super().addUnexpectedSuccess(test)
        self._record(test, "unexpected_success")


def engine_stats() -> dict[str, int]:
    """Sum the integer counters of every engine built so far."""
    total: dict[str, int] = {}
    for engine in ENGINES:
        for name, value in engine.stats().items():
            if isinstance(value, int) and not isinstance(value, bool) and name not in ("current_tid", "cp0", "cp1", "delta_size"):
                total[name] = total.get(name, 0) + value
    return total


class RecordingRunner(DiscoverRunner):
    """Django's runner, recording outcomes and writing the report after the run."""

    def get_resultclass(self) -> Any:
        return RecordingResult

    def run_suite(self, suite: Any, **kwargs: Any) -> Any:
        result = super().run_suite(suite, **kwargs)
        path = os.environ.get("ORM_SUITE_REPORT")
        if path:
            report = {
                "tests_run": result.testsRun,
                "outcomes": _OUTCOMES,
                "stats": engine_stats(),
                "engines": len(ENGINES),
                "verify": os.environ.get("ORM_SUITE_VERIFY_SUPPORTED") == "1" and os.environ.get("ORM_SUITE_VERIFY") == "1",
                "mode": os.environ.get("ORM_SUITE_MODE", "testcase"),
            }
            with open(path, "w") as fh:
                json.dump(report, fh, indent=1)
        return result
