"""Classify raw SQL: a provable read, a write to named tables, DDL on named tables, or unknown.

Both adapters call :func:`classify` on SQL that reaches the database without going
through their ORM's write paths (Django cursors, SQLAlchemy ``text()`` and Core). A
statement the classifier cannot prove to be a read counts as a write: to the tables it
names, or, when it cannot tell, to every cached table (:attr:`Classification.every_table`),
logged at WARNING once per statement shape. Nothing is ever silently a read.

The parser is sqlglot, not sqlparse. sqlparse is a lexer that groups tokens: it would
tell us a statement's first keyword, but not which table an ``UPDATE ... FROM`` or a
data-modifying CTE inside a ``SELECT`` writes, nor whether an identifier was quoted.
sqlglot is a pure-Python parser with dialects for SQLite, PostgreSQL and MySQL: its
tokenizer knows each dialect's comments, string and identifier quoting (dollar quotes,
backslash escapes, backticks, brackets), and its tree gives every DML node and table
reference, quoted or not. It is imported on the first cold classification only.

How a statement is decided (several statements in one string are split on the
tokenizer's semicolons and decided one by one; the strongest verdict wins):

- *read*: ``SELECT``/``VALUES``/set operations with no data-modifying CTE and no
  ``INTO`` table, ``SHOW``, ``EXPLAIN``/``DESCRIBE`` without ``ANALYZE``, transaction
  control (``BEGIN``, ``COMMIT``, ``ROLLBACK``, ``SAVEPOINT``, ``RELEASE``), ``SET``,
  ``RESET``, ``PRAGMA``, ``VACUUM``, ``ANALYZE``, ``REINDEX``, ``LOCK``, ``GRANT``,
  ``COMMENT ON``, cursor and prepared-statement handling (``DECLARE``, ``FETCH``,
  ``PREPARE``...), ``COPY ... TO``, ``CREATE DATABASE``.
- *write*: ``INSERT``/``REPLACE``/``UPDATE``/``DELETE``/``MERGE``/``COPY ... FROM``,
  at top level or in a CTE; the tables are the statement's targets (every table of an
  ``UPDATE``'s target list and joins, of a multi-table ``DELETE``).
- *ddl*: ``CREATE``/``DROP``/``ALTER``/``TRUNCATE`` and ``SELECT ... INTO`` on the
  tables they name (``ALTER TABLE a RENAME TO b`` names both).
- *unknown*: anything else (``CALL``, ``DO``, ``EXECUTE``, ``REFRESH``, ``TRUNCATE ...
  CASCADE``, a parse error, a DDL statement naming no table): a write to every cached table.

``EXPLAIN ANALYZE`` runs its statement and is classified as that statement. On MySQL and
MariaDB, the text of an executable comment (``/*!40101 ... */``, ``/*M!100100 ... */``) is
run by the server: such SQL is classified both with the comments' text and without it, and
the stronger verdict wins.

Limits, by design: a ``SELECT`` calling a function that writes (``SELECT my_proc()``,
``nextval`` aside) is counted as a read, as are writes made by triggers and rules; the
classifier sees the SQL text, not what the database runs on its behalf. ``DROP INDEX``
names only the index: dropping an index changes no row.

Identifier case (:meth:`Classification.written`): SQLite compares table names without
regard to ASCII case, quoted or not; PostgreSQL folds unquoted names to lower case and
keeps quoted ones exact; MySQL/MariaDB depend on ``lower_case_table_names``, so names
match without regard to case there, and in any other dialect. A name may match several
cached tables: all of them count. Schema and database qualifiers are dropped (``public.t``
and ``other.t`` both count as ``t``): a cached table is known by its bare name.

Cost: verdicts are kept per ``(dialect, text)`` in a bounded LRU (:data:`MEMO_SIZE`
entries, statements up to :data:`MEMO_MAX_CHARS` characters): the Django adapter sees every
ORM ``SELECT``, whose text repeats. A ``SELECT`` whose text has no ``;`` and no ``INTO`` is
decided by a prefix test without parsing. Measured on a 2-core CI machine, for a typical
ORM ``SELECT`` with a join and an ``IN`` list: about 1 µs cold, 0.2 µs memoized; a
``WITH ... SELECT`` parsed cold about 0.6 ms, an ``UPDATE`` about 0.25 ms, then 0.2 µs.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from dataclasses import dataclass
from typing import Any, Iterable

__all__ = [
    "Classification",
    "TableName",
    "classify",
    "unknown_statement",
    "dialect_of",
    "MEMO_SIZE",
    "MEMO_MAX_CHARS",
]

log = logging.getLogger("cachedeps.sqlclass")

#: Verdicts kept in the LRU memo.
MEMO_SIZE = 4096
#: Statements longer than this are classified on every call, not kept.
MEMO_MAX_CHARS = 8192

_ORDER = {"read": 0, "write": 1, "ddl": 2, "unknown": 3}
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

_PLAIN_SELECT = re.compile(r"\s*select\b", re.IGNORECASE)
_FORMAT_PLACEHOLDER = re.compile(r"%\([^()]*\)s|%s")
# MySQL's and MariaDB's executable comments: the server runs their text (``/*!40101 ... */``,
# ``/*M!100100 ... */``; a version above the server's is skipped, which we cannot know).
_EXECUTABLE_COMMENT = re.compile(r"/\*M?!\d*(.*?)\*/", re.IGNORECASE | re.DOTALL)

# Statements that change no table row, decided by their first keyword.
_READ_KEYWORDS = frozenset({
    "SAVEPOINT", "RELEASE", "START", "COMMIT", "END", "ROLLBACK", "ABORT",
    "SET", "RESET", "SHOW", "PRAGMA", "VACUUM", "ANALYZE", "ANALYSE", "REINDEX",
    "CHECKPOINT", "LOCK", "UNLOCK", "LISTEN", "UNLISTEN", "NOTIFY", "DISCARD",
    "DEALLOCATE", "PREPARE", "FETCH", "CLOSE", "MOVE", "USE", "GRANT",
    "REVOKE", "COMMENT", "ATTACH", "DETACH",
})
# What may follow BEGIN for it to open a transaction (not a procedural BEGIN ... END block).
_BEGIN_WORDS = frozenset({
    "WORK", "TRANSACTION", "TRAN", "DEFERRED", "IMMEDIATE", "EXCLUSIVE", "ISOLATION", "LEVEL",
    "READ", "WRITE", "ONLY", "COMMITTED", "UNCOMMITTED", "REPEATABLE", "SERIALIZABLE", "NOT",
    "DEFERRABLE", ",",
})
# DROP/ALTER of these kinds changes rows of the tables it names at most; other kinds
# (SCHEMA, TYPE, EXTENSION ... CASCADE, DATABASE) may change or drop tables it does not name.
_NAMED_KINDS = frozenset({"TABLE", "VIEW", "MATERIALIZED VIEW", "INDEX", "SEQUENCE"})
_EXPLAIN_KEYWORDS = frozenset({"EXPLAIN", "DESCRIBE", "DESC"})
# Where the statement an EXPLAIN ANALYZE runs begins.
_STATEMENT_STARTS = frozenset({
    "SELECT", "WITH", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "REPLACE", "CREATE",
    "EXECUTE", "TABLE", "DECLARE",
})

_DIALECTS = {
    "postgresql": "postgres", "postgres": "postgres", "psycopg": "postgres", "psycopg2": "postgres",
    "sqlite": "sqlite", "sqlite3": "sqlite",
    "mysql": "mysql", "mariadb": "mysql",
    "mssql": "tsql", "tsql": "tsql", "oracle": "oracle",
}


def dialect_of(name: str) -> str:
    """Return the classifier's name for a database vendor or SQLAlchemy dialect name.

    ``"postgresql"`` gives ``"postgres"``, ``"mariadb"`` gives ``"mysql"``; an unknown
    name is returned lower-cased (parsed with sqlglot's dialect of that name if there is
    one, else its generic dialect; identifiers match without regard to case).
    """
    return _DIALECTS.get(name.lower(), name.lower())


@dataclass(frozen=True)
class TableName:
    """A table named by a statement: its bare name (qualifiers dropped) and its quoting."""

    name: str
    quoted: bool


@dataclass(frozen=True)
class Classification:
    """What one execute's SQL does to tables.

    Attributes:
        kind: ``"read"``, ``"write"`` (DML), ``"ddl"`` or ``"unknown"``; for several
            statements, the strongest of theirs.
        tables: the tables written or altered, as named (empty when ``every_table``).
        every_table: the statement counts as a write to every cached table.
        autocommit_only: the database refuses it inside a transaction block
            (``CREATE INDEX CONCURRENTLY``, ``DROP DATABASE``): its keys must be appended
            after it ran, in a transaction of their own.
        dialect: the dialect the names are matched in.
        reason: why the statement was not proved a read (for logs and tests).
    """

    kind: str
    tables: tuple[TableName, ...] = ()
    every_table: bool = False
    autocommit_only: bool = False
    dialect: str = ""
    reason: str = ""

    @property
    def is_read(self) -> bool:
        """Return whether the statement provably changes no table row."""
        return self.kind == "read"

    def written(self, tables: Iterable[str]) -> list[str]:
        """Return the names among ``tables`` (spelled as the cache knows them) it may write.

        Every one of them when :attr:`every_table`; none for a read.
        """
        if self.kind == "read":
            return []
        if self.every_table:
            return list(dict.fromkeys(tables))
        if not self.tables:
            return []
        # One lookup per named table in an index of the candidates by their matching
        # spelling, not a comparison with each of them: a flush deleting from every table
        # of a large schema classifies one statement per table.
        index = _table_index(self.dialect, tables if isinstance(tables, frozenset) else tuple(tables))
        out: dict[str, None] = {}
        for ref in self.tables:
            found: dict[str, int] = {}
            for spelling in _ref_spellings(self.dialect, ref):
                for position, table in index.get(spelling, ()):
                    found[table] = position
            for table in sorted(found, key=found.__getitem__):  # in the candidates' order
                out[table] = None
        return list(out)

    def spellings(self) -> list[str]:
        """Return the named tables as the database spells them (PostgreSQL folds unquoted)."""
        out: dict[str, None] = {}
        for ref in self.tables:
            if self.dialect == "postgres" and not ref.quoted:
                out[ref.name.translate(_ASCII_LOWER)] = None
            else:
                out[ref.name] = None
        return list(out)


def _table_spelling(dialect: str, table: str) -> str:
    """Return the spelling under which a cached table's name is indexed (see :func:`_same_table`)."""
    if dialect == "sqlite":
        return table.translate(_ASCII_LOWER)
    if dialect == "postgres":
        return table
    return table.casefold()


def _ref_spellings(dialect: str, ref: TableName) -> tuple[str, ...]:
    """Return the index spellings a named table matches (see :func:`_same_table`)."""
    if dialect == "sqlite":
        return (ref.name.translate(_ASCII_LOWER),)
    if dialect == "postgres":
        if ref.quoted:
            return (ref.name,)
        return tuple(dict.fromkeys((ref.name.translate(_ASCII_LOWER), ref.name.lower())))
    return (ref.name.casefold(),)


@functools.lru_cache(maxsize=16)
def _table_index(dialect: str, tables: tuple[str, ...] | frozenset[str]) -> dict[str, list[tuple[int, str]]]:
    """Index ``tables`` by :func:`_table_spelling`: spelling -> ``[(position, table)]``."""
    index: dict[str, list[tuple[int, str]]] = {}
    for position, table in enumerate(dict.fromkeys(tables)):
        index.setdefault(_table_spelling(dialect, table), []).append((position, table))
    return index


def _same_table(dialect: str, ref: TableName, table: str) -> bool:
    if dialect == "sqlite":
        return ref.name.translate(_ASCII_LOWER) == table.translate(_ASCII_LOWER)
    if dialect == "postgres":
        if ref.quoted:
            return ref.name == table
        # PostgreSQL folds ASCII letters (and, in single-byte encodings, others): match both.
        return table in (ref.name.translate(_ASCII_LOWER), ref.name.lower())
    return ref.name.casefold() == table.casefold()


_READ: dict[str, Classification] = {}


def _read(dialect: str) -> Classification:
    found = _READ.get(dialect)
    if found is None:
        found = _READ[dialect] = Classification("read", dialect=dialect)
    return found


def classify(sql: str, dialect: str) -> Classification:
    """Classify the SQL text of one execute (one statement or several).

    Args:
        sql: the statement text, with placeholders in any DB-API paramstyle
            (``?``, ``%s``, ``%(name)s``, ``:name``, ``$1``).
        dialect: the database (``"sqlite"``, ``"postgresql"``, ``"mysql"``... see
            :func:`dialect_of`).

    Never raises on bad SQL: what it cannot parse is ``"unknown"``.
    """
    if len(sql) > MEMO_MAX_CHARS:
        return _decide(dialect, sql)
    return _memo(dialect, sql)


def unknown_statement(dialect: str, description: str) -> Classification:
    """Return the verdict for a statement whose SQL text cannot be had (a driver object).

    It counts as a write to every cached table; ``description`` is logged at WARNING once.
    """
    result = _unknown(dialect_of(dialect), "its SQL text cannot be read")
    _warn_once(result, description)
    return result


@functools.lru_cache(maxsize=MEMO_SIZE)
def _memo(dialect: str, sql: str) -> Classification:
    return _decide(dialect, sql)


def _decide(dialect: str, sql: str) -> Classification:
    dialect = dialect_of(dialect)
    if dialect == "mysql" and "/*" in sql and _EXECUTABLE_COMMENT.search(sql):
        # The statement as the server runs it (the comments' text included) and as written
        # (the server skips a comment whose version is above its own): the stronger verdict.
        ran = _EXECUTABLE_COMMENT.sub(lambda m: f" {m.group(1)} ", sql)
        return _combine(dialect, [_classify_text(dialect, sql), _classify_text(dialect, ran)])
    if _PLAIN_SELECT.match(sql) and ";" not in sql and "into" not in sql.lower():
        return _read(dialect)
    return _classify_text(dialect, sql)


_warned: set[str] = set()
_warned_lock = threading.Lock()


def _classify_text(dialect: str, sql: str) -> Classification:
    result = _classify(dialect, sql)
    if result.every_table:
        _warn_once(result, sql)
    return result


def _warn_once(result: Classification, sql: str) -> None:
    shape = " ".join(sql.split())[:200]
    with _warned_lock:
        first = shape not in _warned
        if first:
            if len(_warned) >= 1000:
                _warned.clear()
            _warned.add(shape)
    if first:
        log.warning(
            "cachedeps cannot tell which tables this SQL writes (%s); it counts as a write "
            "to every cached table: %s", result.reason, shape,
        )


def _classify(dialect: str, sql: str) -> Classification:
    if dialect != "postgres" and "%" in sql:
        sql = _FORMAT_PLACEHOLDER.sub("?", sql)
    sg = _sqlglot()
    try:
        tokens = _sg_dialect(dialect).tokenize(sql)
    except Exception as exc:  # sqlglot's TokenError, or any bug of its own: unknown
        return _unknown(dialect, f"cannot tokenize: {exc}")
    verdicts: list[Classification] = []
    chunk: list[Any] = []
    for token in [*tokens, None]:
        if token is None or token.token_type == sg.tokens.TokenType.SEMICOLON:
            if chunk:
                verdicts.append(_statement(dialect, sql, chunk))
            chunk = []
        else:
            chunk.append(token)
    return _combine(dialect, verdicts)


def _combine(dialect: str, verdicts: list[Classification]) -> Classification:
    if not verdicts:
        return _read(dialect)
    if len(verdicts) == 1:
        return verdicts[0]
    kind = max((v.kind for v in verdicts), key=_ORDER.__getitem__)
    if kind == "read":
        return _read(dialect)
    tables: dict[TableName, None] = {}
    for v in verdicts:
        tables.update(dict.fromkeys(v.tables))
    every = any(v.every_table for v in verdicts)
    return Classification(
        kind,
        () if every else tuple(tables),
        every_table=every,
        autocommit_only=any(v.autocommit_only for v in verdicts),
        dialect=dialect,
        reason="; ".join(v.reason for v in verdicts if v.reason),
    )


def _unknown(dialect: str, reason: str, *, autocommit_only: bool = False) -> Classification:
    return Classification("unknown", every_table=True, autocommit_only=autocommit_only, dialect=dialect, reason=reason)


#: MySQL's modifiers between UPDATE/DELETE/INSERT and the table
_MYSQL_MODIFIERS = frozenset({"LOW_PRIORITY", "HIGH_PRIORITY", "DELAYED", "QUICK", "IGNORE"})


def _statement(dialect: str, sql: str, chunk: list[Any]) -> Classification:
    sg = _sqlglot()
    first = chunk[0]
    keyword = first.text.upper()
    commands = _sg_dialect(dialect).tokenizer_class.COMMANDS
    if len(chunk) < 2:
        rest = ""
    elif first.token_type in commands and chunk[1].token_type == sg.tokens.TokenType.STRING:
        rest = chunk[1].text  # the tokenizer keeps a command's rest as one string (offsets unset)
    else:
        rest = sql[chunk[1].start : chunk[-1].end + 1]
    if keyword in _READ_KEYWORDS:
        return _read(dialect)
    if keyword == "BEGIN" or (keyword == "DECLARE" and dialect == "postgres"):
        # BEGIN opens a transaction unless it opens a procedural block (Oracle, T-SQL);
        # PostgreSQL's DECLARE declares a cursor over a query, elsewhere it starts a block.
        if keyword == "DECLARE" or all(t.text.upper() in _BEGIN_WORDS for t in chunk[1:]):
            return _read(dialect)
        return _unknown(dialect, "a procedural BEGIN block")
    if keyword in _EXPLAIN_KEYWORDS:
        return _explain(dialect, rest)
    if first.token_type in commands:
        # The tokenizer keeps the rest of a command statement as one string.
        if keyword == "REPLACE":
            return _classify(dialect, "INSERT " + rest)
        if keyword == "SHOW":
            return _read(dialect)
        return _unknown(dialect, f"{keyword} runs code the classifier cannot see")
    if dialect == "mysql" and keyword in ("UPDATE", "DELETE", "INSERT"):
        # Modifiers sqlglot reads as a table name (UPDATE LOW_PRIORITY t: "LOW_PRIORITY");
        # they do not change which tables are written.
        i = 1
        while i < len(chunk) and chunk[i].text.upper() in _MYSQL_MODIFIERS:
            i += 1
        chunk = [first, *chunk[i:]]
    try:
        parsed = _sg_dialect(dialect).parser().parse(chunk, sql)
    except Exception as exc:  # sqlglot's ParseError: a dialect feature it does not know
        return _unknown(dialect, f"cannot parse {keyword}: {str(exc).splitlines()[0]}")
    verdicts = [_expression(dialect, sg.exp, e) for e in parsed if e is not None]
    return _combine(dialect, verdicts)


def _explain(dialect: str, rest: str) -> Classification:
    sg = _sqlglot()
    try:
        tokens = _sg_dialect(dialect).tokenize(rest)
    except Exception as exc:
        return _unknown(dialect, f"cannot tokenize EXPLAIN: {exc}")
    words = [t.text.upper() for t in tokens if t.token_type != sg.tokens.TokenType.STRING]
    if not any(w in ("ANALYZE", "ANALYSE") for w in words):
        return _read(dialect)  # a plan is computed, the statement is not run
    for token in tokens:
        if token.token_type != sg.tokens.TokenType.STRING and token.text.upper() in _STATEMENT_STARTS:
            return _classify(dialect, rest[token.start :])
    return _unknown(dialect, "EXPLAIN ANALYZE of a statement the classifier cannot find")


def _names(exp: Any, nodes: Iterable[Any]) -> list[TableName]:
    out: list[TableName] = []
    for node in nodes:
        if node is None:
            continue
        for table in node.find_all(exp.Table):
            ident = table.this
            if isinstance(ident, exp.Identifier):
                out.append(TableName(ident.name, bool(ident.quoted)))
            elif table.name:
                out.append(TableName(table.name, False))
    return out


def _dml_targets(exp: Any, node: Any) -> list[TableName]:
    if isinstance(node, exp.Insert):
        target = node.this
        found = target.find(exp.Table) if target is not None else None
        return _names(exp, [found])
    if isinstance(node, exp.Update):
        return _names(exp, [node.this])
    if isinstance(node, exp.Delete):
        return _names(exp, [node.this, *(node.args.get("tables") or [])])
    if isinstance(node, exp.Merge):
        target = node.this
        found = target.find(exp.Table) if target is not None else None
        return _names(exp, [found])
    return []


_READ_EXPRESSIONS = (
    "Set", "Transaction", "Commit", "Rollback", "Pragma", "Analyze", "Use", "Grant",
    "Revoke", "Comment", "Describe", "Values", "Attach", "Detach",
)


def _expression(dialect: str, exp: Any, e: Any) -> Classification:
    dml_types = (exp.Insert, exp.Update, exp.Delete, exp.Merge)
    if isinstance(e, exp.TruncateTable):
        if str(e.args.get("option") or "").upper() == "CASCADE":
            # It also empties every table referencing these, which the SQL does not name.
            return _unknown(dialect, "TRUNCATE ... CASCADE empties tables it does not name")
        return _named(dialect, "ddl", _names(exp, e.expressions), "TRUNCATE")
    if isinstance(e, (exp.Create, exp.Drop, exp.Alter)):
        kind = str(e.args.get("kind") or "").upper()
        verb = type(e).__name__.upper()
        if kind == "DATABASE":
            if isinstance(e, exp.Create):
                return _read(dialect)  # a new database holds none of this one's tables
            return _unknown(dialect, f"{verb} DATABASE", autocommit_only=True)
        if not isinstance(e, exp.Create) and kind not in _NAMED_KINDS:
            return _unknown(dialect, f"{verb} {kind} may change tables it does not name")
        names = _names(exp, [e])
        concurrently = bool(e.args.get("concurrently"))
        if not names:
            return _unknown(dialect, f"{verb} {kind} names no table", autocommit_only=concurrently)
        out = _named(dialect, "ddl", names, f"{verb} {kind}")
        if concurrently:
            out = Classification("ddl", out.tables, dialect=dialect, autocommit_only=True, reason=out.reason)
        return out
    if isinstance(e, exp.Copy):
        if not e.args.get("kind"):
            return _read(dialect)  # COPY ... TO
        names = _names(exp, [e.this])
        if not names:
            return _unknown(dialect, "COPY FROM into a target the classifier cannot name")
        return _named(dialect, "write", names, "COPY FROM")
    targets: list[TableName] = []
    writes = False
    for node in e.find_all(*dml_types):
        writes = True
        if not isinstance(node, exp.Merge) and node.find_ancestor(exp.Merge) is not None:
            continue  # a MERGE's WHEN ... THEN UPDATE/INSERT/DELETE: its target is the MERGE's
        found = _dml_targets(exp, node)
        if not found:
            return _unknown(dialect, f"{type(node).__name__.upper()} with a target the classifier cannot name")
        targets.extend(found)
    into = e.args.get("into") if isinstance(e, exp.Query) else None
    into_names = _names(exp, [into]) if into is not None else []
    if into_names:
        return _named(dialect, "ddl", targets + into_names, "SELECT INTO")
    if writes:
        return _named(dialect, "write", targets, "data-modifying statement")
    if isinstance(e, exp.Query):
        return _read(dialect)
    if any(isinstance(e, getattr(exp, name, ())) for name in _READ_EXPRESSIONS):
        return _read(dialect)
    if isinstance(e, exp.Command):
        keyword = str(e.this).upper()
        if keyword in _READ_KEYWORDS:
            return _read(dialect)
        if keyword in _EXPLAIN_KEYWORDS:
            return _explain(dialect, str(e.expression or ""))
        return _unknown(dialect, f"{keyword} runs code the classifier cannot see")
    return _unknown(dialect, f"{type(e).__name__} statement")


def _named(dialect: str, kind: str, names: list[TableName], reason: str) -> Classification:
    return Classification(kind, tuple(dict.fromkeys(names)), dialect=dialect, reason=reason)


@functools.lru_cache(maxsize=None)
def _sg_dialect(dialect: str) -> Any:
    from sqlglot.dialects.dialect import Dialect

    try:
        return Dialect.get_or_raise(dialect)
    except Exception:  # a dialect sqlglot does not have: its generic one
        return Dialect.get_or_raise(None)


@functools.lru_cache(maxsize=None)
def _sqlglot() -> Any:
    import sqlglot
    import sqlglot.expressions
    import sqlglot.tokens

    return sqlglot
