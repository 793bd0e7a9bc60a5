"""Raw SQL the classifier must not call a read (issue 9, break 7 and deliverable 4).

MySQL and MariaDB run the text of executable comments (``/*!40101 ... */``, MariaDB's
``/*M!100100 ... */``; ``mysqldump`` writes them): a write inside one was classified as a
read, a comment like any other.
"""

from __future__ import annotations

import pytest

from cachedeps.sqlclass import classify


@pytest.mark.parametrize("sql, kind, tables", [
    ("/*!40101 UPDATE book SET title = 'x' */", "write", ["book"]),
    ("/*!UPDATE book SET title = 'x'*/", "write", ["book"]),
    ("/*M!100100 DELETE FROM book */", "write", ["book"]),
    ("/*m!100100 DELETE FROM book */", "write", ["book"]),
    ("/* plain */ /*!40000 ALTER TABLE book ADD COLUMN extra integer */", "ddl", ["book"]),
    ("SELECT 1; /*!40101 INSERT INTO author (name) VALUES ('a') */", "write", ["author"]),
    ("/*!40101 SET NAMES utf8mb4 */; UPDATE book SET title = 'x'", "write", ["book"]),
])
def test_mysql_executable_comments_are_classified_as_the_server_runs_them(sql, kind, tables):
    verdict = classify(sql, "mysql")
    assert verdict.kind == kind
    assert [t.name for t in verdict.tables] == tables
    assert verdict.written(["book", "author"]) == tables


def test_mysql_executable_comment_the_parser_does_not_know_writes_every_table():
    verdict = classify("/*!40000 ALTER TABLE book DISABLE KEYS */", "mysql")  # as in mysqldump's output
    assert not verdict.is_read and verdict.every_table
    assert verdict.written(["book", "author"]) == ["book", "author"]


@pytest.mark.parametrize("sql", [
    "SELECT * FROM book /*!50000 FOR UPDATE */",
    "/*!40101 SET NAMES utf8mb4 */",
    "SELECT 1 /*!*/",
    "SELECT 1 /*+ MAX_EXECUTION_TIME(1000) */",
])
def test_mysql_executable_comments_that_only_read_stay_reads(sql):
    assert classify(sql, "mysql").is_read


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_other_databases_do_not_run_comments(dialect):
    assert classify("/*!40101 UPDATE book SET title = 'x' */", dialect).is_read
