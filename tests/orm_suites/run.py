"""Run the ORMs' own test suites through cachedeps and classify every failure.

    python -m tests.orm_suites.run django [--db sqlite|postgresql|mysql] [--mode testcase|autocommit|both]
                                          [--compare] [--modules M ...] [--subset ci|core|all]
    python -m tests.orm_suites.run sqla   [--db sqlite|postgresql|mysql] [--compare] [--paths test/orm/...]
                                          [--test-timeout SECONDS]

Each run prints the failures per class (``a`` stale/wrong result, ``b`` crash in cachedeps,
``c`` fails with the plain backend too, ``d`` counts queries), the engines' hit and fill
counts, and exits 1 when a failure is of class ``a`` or ``b``. ``--compare`` also runs the
stock backend (plain Django / SQLAlchemy without ``install()``) on the same tests and counts
its failures as class ``c``. PostgreSQL uses ``CACHEDEPS_TEST_PG_DB`` (default ``test``);
test databases (PostgreSQL and MySQL) are named after ``CACHEDEPS_TEST_PG_NAME``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import classify, expected
from .sdist import ROOT, source_tree

__all__ = ["DJANGO_MODULES", "DJANGO_CORE", "DJANGO_CI", "main", "run_django"]

#: Django test modules run by ``make test-orm`` (the issue's list, then more ORM modules)
DJANGO_MODULES = [
    "basic", "queries", "lookup", "aggregation", "annotations", "expressions", "many_to_many",
    "many_to_one", "one_to_one", "m2m_through", "select_related", "prefetch_related", "update",
    "delete", "bulk_create", "transactions", "transaction_hooks", "model_inheritance",
    "get_or_create", "defer", "raw_query", "custom_managers", "null_fk", "generic_relations",
    "async",
    # more
    "aggregation_regress", "expressions_case", "expressions_window", "model_inheritance_regress",
    "delete_regress", "m2m_regress", "m2m_through_regress", "select_related_regress",
    "select_related_onetoone", "defer_regress", "known_related_objects", "ordering",
    "distinct_on_fields", "filtered_relation", "update_only_fields", "force_insert_update",
    "custom_pk", "many_to_one_null", "generic_relations_regress", "proxy_models",
    "select_for_update", "null_queries", "or_lookups", "reverse_lookup", "m2m_recursive",
    "m2m_multiple", "m2o_recursive", "one_to_one", "composite_pk", "foreign_object",
    "nested_foreign_keys", "null_fk_ordering", "queryset_pickle", "save_delete_hooks",
    "signals", "get_earliest_or_latest", "dates", "datetimes", "model_regress", "custom_lookups",
    "from_db_value", "multiple_database", "fixtures", "xor_lookups",
    # column types, database functions and write paths beyond the ORM modules above
    "model_fields", "postgres_tests", "db_functions", "custom_columns", "string_lookup", "timezones",
    "model_formsets", "model_forms", "serializers", "m2m_and_m2o", "m2m_signals", "m2m_intermediary",
    "datatypes", "field_defaults", "db_typecasts", "mutually_referential", "order_with_respect_to",
    "pagination", "get_object_or_404", "custom_methods", "extra_regress", "model_enums", "properties",
    "reserved_names", "constraints", "unmanaged_models", "proxy_model_inheritance", "max_lengths",
    "inline_formsets", "model_formsets_regress", "validation", "fixtures_regress", "contenttypes_tests",
    "sessions_tests", "auth_tests", "admin_changelist",
    # the backends' cursors, execute wrappers, schema editor and migrations (raw SQL and DDL)
    "backends", "schema", "migrations", "introspection", "inspectdb", "db_utils",
    # Django's own BaseCacheTests on the CachedepsCache backend (django_cache_backend.py)
    "cache.test_cachedeps_backend",
]
#: the issue's list (``--subset core``)
DJANGO_CORE = DJANGO_MODULES[: DJANGO_MODULES.index("async") + 1]
#: the subset ``make test`` runs (SQLite, both modes): a few minutes at most
DJANGO_CI = ["basic", "lookup", "many_to_one", "update", "delete", "null_fk", "get_or_create", "custom_managers",
             "cache.test_cachedeps_backend"]


def _env(src: Path, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    # the checkout under test first; this directory for the boot, settings and runner modules
    here = str(Path(__file__).resolve().parent)
    env["PYTHONPATH"] = os.pathsep.join([str(src), here] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(extra)
    return env


def _server_env(db: str) -> dict[str, str]:
    """Return the settings' environment for a database server (``postgresql``, ``mysql``)."""
    if db not in ("postgresql", "mysql"):
        return {}
    name = os.environ.get("CACHEDEPS_TEST_PG_DB", "test")
    prefix = os.environ.get("CACHEDEPS_TEST_PG_NAME", f"test_{name}") + "_orm"
    return {"ORM_SUITE_PG_DB": name, "ORM_SUITE_TEST_PREFIX": prefix}


def run_django(modules: list[str], *, db: str = "sqlite", mode: str = "testcase", backend: str = "cachedeps",
               verify: bool = True, src: Path = ROOT, verbosity: int = 0, timeout: float = 3 * 3600) -> dict[str, Any]:
    """Run Django's own tests for ``modules``; return the JSON report (plus ``seconds``, ``rc``)."""
    tree = source_tree("Django")
    with tempfile.TemporaryDirectory(prefix="orm_suite_") as tmp:
        report = Path(tmp) / "report.json"
        env = _env(src, {
            "ORM_SUITE_DB": db, "ORM_SUITE_MODE": mode, "ORM_SUITE_BACKEND": backend,
            "ORM_SUITE_VERIFY": "1" if verify else "0", "ORM_SUITE_REPORT": str(report),
            **_server_env(db),
        })
        args = [sys.executable, str(Path(__file__).resolve().parent / "django_boot.py"), str(tree / "tests"),
                "--settings", "django_settings", "--parallel", "1",
                "-v", str(verbosity), "--noinput", *modules]
        started = time.monotonic()
        proc = subprocess.run(args, env=env, cwd=str(tree / "tests"), capture_output=True, text=True, timeout=timeout)
        seconds = time.monotonic() - started
        if not report.exists():
            raise RuntimeError(
                f"Django's runtests.py ({backend}, {db}, {mode}) wrote no report (exit {proc.returncode}):\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
            )
        data = json.loads(report.read_text())
    data.update(seconds=round(seconds, 1), rc=proc.returncode, db=db, backend=backend, suite="django")
    return data


def failed_ids(report: dict[str, Any]) -> set[str]:
    """Return the ids of the tests that failed or errored."""
    return {o["id"] for o in report["outcomes"] if o["outcome"] in ("failure", "error")}


def print_summary(report: dict[str, Any], summary: dict[str, Any], out: Any = sys.stdout, details: bool = True) -> None:
    """Print one run's counts per class, its engine counters and the unexplained failures."""
    stats = report.get("stats", {})
    label = f"{report['suite']} {report['db']} mode={report.get('mode', '-')} verify={'on' if report.get('verify') else 'off'}"
    counts = summary["counts"]
    print(f"== {label}: {report['tests_run']} tests in {report['seconds']}s; "
          + ", ".join(f"{k}={v}" for k, v in counts.items())
          + f"; skipped={summary['skip']} xfail={summary['expected_failure']} xpass={summary['unexpected_success']}", file=out)
    if stats:
        print(f"   engine: hits={stats.get('hits', 0)} fills={stats.get('sets', 0)} misses={stats.get('misses', 0)} "
              f"stale={stats.get('stale', 0)} invalidations={stats.get('invalidations', 0)} "
              f"polls={stats.get('polls', 0)} resets={stats.get('resets', 0)} engines={report.get('engines', 0)}", file=out)
    for item in summary["items"]:
        if item["class"] in ("a", "b") or (details and not item["listed"]):
            last = item.get("traceback", "").strip().splitlines()[-1:] or [""]
            print(f"   [{item['class']}] {item['id']}: {item['why']}: {last[0][:300]}", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.orm_suites.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", choices=["django", "sqla"])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "mysql"], default="sqlite")
    parser.add_argument("--mode", choices=["testcase", "autocommit", "both"], default="both")
    parser.add_argument("--compare", action="store_true", help="also run the stock backend; its failures are class c")
    parser.add_argument("--modules", nargs="*", help="Django test modules (default: the whole list)")
    parser.add_argument("--paths", nargs="*", help="SQLAlchemy test paths (default: test/orm test/ext)")
    parser.add_argument("--subset", choices=["ci", "core", "all"], default="all")
    parser.add_argument("--test-timeout", type=float, default=None,
                        help="seconds a SQLAlchemy test may run before it fails as hung (default 300; 0: no limit)")
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument("--src", type=Path, default=ROOT, help="the checkout whose cachedeps is tested")
    parser.add_argument("--json", type=Path, help="write every report and summary to this file")
    parser.add_argument("-v", "--verbosity", type=int, default=0)
    args = parser.parse_args(argv)
    results = []
    bad = 0
    if args.suite == "django":
        modules = args.modules or {"ci": DJANGO_CI, "core": DJANGO_CORE, "all": DJANGO_MODULES}[args.subset]
        modules = list(dict.fromkeys(modules))
        modes = ["testcase", "autocommit"] if args.mode == "both" else [args.mode]
        for mode in modes:
            plain = None
            if args.compare:
                plain = failed_ids(run_django(modules, db=args.db, mode=mode, backend="plain", src=args.src))
            report = run_django(modules, db=args.db, mode=mode, verify=not args.no_verify, src=args.src,
                                verbosity=args.verbosity)
            summary = classify.summarize(report["outcomes"], expected.DJANGO, plain, mode)
            print_summary(report, summary)
            bad += summary["counts"]["a"] + summary["counts"]["b"]
            results.append({"report": report, "summary": summary})
    else:
        from .sqla import TEST_TIMEOUT, run_sqla

        paths = args.paths or None
        limit = TEST_TIMEOUT if args.test_timeout is None else args.test_timeout
        plain = None
        if args.compare:
            plain = failed_ids(run_sqla(paths, db=args.db, install=False, src=args.src, subset=args.subset,
                                        test_timeout=limit))
        report = run_sqla(paths, db=args.db, verify=not args.no_verify, src=args.src, subset=args.subset,
                          test_timeout=limit)
        summary = classify.summarize(report["outcomes"], expected.SQLA, plain, report.get("mode"))
        print_summary(report, summary)
        bad += summary["counts"]["a"] + summary["counts"]["b"]
        results.append({"report": report, "summary": summary})
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
