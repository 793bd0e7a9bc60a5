"""The key algebra: what a read depends on and what a write emits, spelled once for both ORMs.

The adapters translate their query trees and their written rows into the terms of this
module; the keys themselves are spelled by :mod:`cachedeps.keys`.

Values: spelled from what the database compares
------------------------------------------------
A field-value key ``t.c=v`` is only useful when the reader and every writer spell ``v`` the
same way for the same stored datum. Python values do not have that property: a custom
field stores ``[1, 2]`` as ``"1,2"``, an ``Enum`` stores ``Color.RED`` as ``"RED"``, Django
stores a UUID on SQLite as 32 hex digits, and JSON ``1`` and ``true`` are equal in Python
and different in the database. So every value is spelled from its **database form**:

- a read spells the constant of an equality after the ORM's bind processing (Django's
  ``get_db_prep_value(..., prepared=True)``, SQLAlchemy's bind processor for the dialect),
  which is the very value the database compares;
- a write spells the row values as the database returns them, before any result
  processing (Django's ``from_db_value``, SQLAlchemy's result processors).

One function, :func:`spell`, with one type table, :data:`KINDS`, turns a database value into
the text of a key, given the *kind* of the column (how the database compares it), which the
adapter reads from the column's declared type and collation (:func:`text_kind`). A kind
is in the table only when equality in the database is equality of the spelling:

==========  ==========================================  =================================
kind        database values accepted                    spelling
==========  ==========================================  =================================
integer     ``int`` (``bool`` as 0/1)                   decimal
boolean     ``bool``, ``0``, ``1``                      ``1``/``0``
text        ``str``, binary or deterministic collation  the text itself (long: a digest)
            (MySQL: a declared NO PAD binary one)
uuid        ``uuid.UUID`` or its text (native uuid)     hex with dashes
==========  ==========================================  =================================

``None`` spells ``null`` in every kind (``IS NULL`` anchors). Anything else (:data:`OTHER`:
floats, decimals, dates and times, JSON, arrays, binary, custom types, text under a
case-insensitive or non-deterministic collation, a value whose Python type does not fit its
column's kind) has no exact spelling: :func:`spell` returns ``None`` and the read depends on
the table's keys, never on a guessed spelling. Writes spell every stored value with
:func:`cachedeps.keys.canonical_value`, which agrees with :func:`spell` on every kind of
the table: the writer does not need to know the kind, the reader decides.

Changes: compared as the database stores them
---------------------------------------------
A column has changed when its old and new database values differ *as stored*:
:func:`same_stored` compares type and value, recursively (``1`` and ``True``, ``1`` and
``1.0``, ``Decimal("1.0")`` and ``Decimal("1.00")``, ``0.0`` and ``-0.0`` all differ).
Calling a column changed that the database considers equal only emits a key too many.

Reads
-----
A read is described per table alias it reads (:class:`TableRead`): the table, whether the
alias is on the nullable side of an outer join, and the equality anchor of the query's top
conjunction on it (``column = constant``, ``column IN (...)``, ``column IS NULL``), if any.
:func:`table_deps` turns it into dependency keys:

1. an anchored alias depends on one field-value key per anchor value;
2. an alias without an anchor, one whose anchor a value cannot spell exactly, or one on the
   nullable side of an outer join, depends on the table key.

The finer form for the main table of a read returning its primary key (or counting its
rows) is :func:`change_deps`: field-change keys for the columns its WHERE, its joins' ON
conditions and its ORDER BY reference, plus the oids of the rows it returned.

Writes
------
:func:`write_keys` gives every key a write of one row emits: the table key, the oid, a
table change key per changed column (``*`` for an insert or a delete), and a field-value key
and field-change keys for every column value of the old and of the new version.

Soundness
---------
Claim: if a committed write changes the result of a read, the write emits a key that the
read depends on (or one that implies it: ``t:*`` for unknown rows, :func:`cachedeps.keys.implied`).

- *Table key.* Every write to a table emits its table key: a read depending on it is
  covered whatever the write does.
- *Field-value key* ``t.c=v`` *(rule 1).* The alias is inner-joined (or the FROM table), so
  every row of the result holds a row of ``t`` satisfying ``c = v`` in the database. A
  write can change the result only through a row of ``t`` that satisfies the conjunction
  before or after it, hence has ``c = v`` in its old or new version. The writer spells that
  version's stored value of ``c``, the reader the bound constant; both are database values
  of the same column, and for the kinds of the table, the database calls two of them equal
  exactly when they spell the same. So the write emits ``t.c=v``. A value or kind outside
  the table is not anchored (rule 2).
- *Outer joins (rule 2).* On the nullable side of an outer join a condition does not
  restrict which rows of the other tables appear: ``LEFT JOIN book ... WHERE book.id IS
  NULL`` lists authors *without* a book, and inserting a book with ``author_id = 7`` changes
  it while no row with ``book.id = NULL`` is ever written. The nullable side depends on its
  table key.
- *Field-change keys* ``t.k=v/c`` *and table change keys* ``t/c``, *with the oids of the
  rows returned.* Rows of ``t`` enter, leave or move in the result only by an insert or a
  delete of a row matching the anchor (``/*``) or an update changing a column the query's
  conditions or order read (``/c``), and changed columns are found by comparing stored
  values (:func:`same_stored`), so a change the database sees is never missed; any other
  update changes a returned row in place, and every update or delete emits the row's oid.
  The oid is spelled from the primary key's database value on both sides.
- *Limits.* Statements whose rows are unknown (raw SQL, bulk statements over more rows than
  tracked) emit ``t`` and ``t:*``. The proof relies on the adapter's classification of
  the column's kind: a collation the ORM does not declare (set only in the database's own
  DDL) is invisible to it and must be declared on the model/type for case-insensitive
  columns to stay sound.
"""

from __future__ import annotations

import datetime
import decimal
import math
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from . import keys as _keys

__all__ = [
    "INTEGER",
    "BOOLEAN",
    "TEXT",
    "UUID",
    "OTHER",
    "KINDS",
    "EXACT_COLLATIONS",
    "MYSQL_EXACT_COLLATIONS",
    "text_kind",
    "spell",
    "spell_all",
    "same_stored",
    "changed_columns",
    "TableRead",
    "table_deps",
    "change_deps",
    "oid",
    "write_keys",
]

INTEGER = "integer"
BOOLEAN = "boolean"
TEXT = "text"
UUID = "uuid"
#: A column whose values have no exact spelling: reads of it depend on table keys.
OTHER = "other"
#: The kinds :func:`spell` spells exactly.
KINDS = frozenset({INTEGER, BOOLEAN, TEXT, UUID})

#: Collations under which text equality is equality of the bytes (lower case).
EXACT_COLLATIONS = frozenset({"binary", "c", "posix", "ucs_basic", "c.utf-8", "c.utf8", "pg_c_utf8"})


#: MySQL/MariaDB collations under which text equality is equality of the characters:
#: binary order *and* NO PAD. The ``*_bin`` collations (``utf8mb4_bin``) are PAD SPACE, so
#: ``'a' = 'a '`` there; the ``*_ci`` defaults ignore case and accents too.
MYSQL_EXACT_COLLATIONS = frozenset({"utf8mb4_nopad_bin", "utf8mb4_0900_bin"})


def text_kind(collation: str | None, dialect: str | None = None) -> str:
    """Return the kind of a text column declared with ``collation`` (``None``: the default).

    The default collations of SQLite (``BINARY``) and PostgreSQL (deterministic) compare
    text exactly; a declared collation is exact only when it is known binary
    (:data:`EXACT_COLLATIONS`): ``NOCASE``, ``RTRIM`` and ICU collations may call different
    texts equal, so their columns are :data:`OTHER`.

    On MySQL and MariaDB (``dialect`` ``"mysql"`` or ``"mariadb"``) the default collation
    (the column's, table's, database's or server's: not known to the ORM) is case- and
    accent-insensitive and PAD SPACE on almost every installation, so only a column
    *declared* with a collation of :data:`MYSQL_EXACT_COLLATIONS` is :data:`TEXT`.
    """
    name = (collation or "").strip().strip('"').strip("`").lower()
    if dialect in ("mysql", "mariadb"):
        return TEXT if name in MYSQL_EXACT_COLLATIONS else OTHER
    if not name:
        return TEXT
    return TEXT if name in EXACT_COLLATIONS else OTHER


def spell(kind: str, value: Any) -> str | None:
    """Return the exact spelling of database value ``value`` of a column of ``kind``.

    Returns ``None`` when the value has no exact spelling (see the module docstring): the
    read must then depend on the table's keys.
    """
    if value is None:
        return _keys.canonical_value(None)
    if kind == INTEGER:
        if isinstance(value, int):
            return _keys.canonical_value(int(value))
        return None
    if kind == BOOLEAN:
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return _keys.canonical_value(bool(value))
        return None
    if kind == TEXT:
        if isinstance(value, str):
            return _keys.canonical_value(value)
        return None
    if kind == UUID:
        if isinstance(value, uuid.UUID):
            return _keys.canonical_value(value)
        if isinstance(value, str):
            try:
                return _keys.canonical_value(uuid.UUID(value))
            except ValueError:
                return None
        return None
    return None


def spell_all(kind: str, values: Iterable[Any]) -> list[str] | None:
    """Return :func:`spell` of every value, or ``None`` if any has no exact spelling."""
    out: list[str] = []
    for value in values:
        text = spell(kind, value)
        if text is None:
            return None
        out.append(text)
    return out


def _stored(value: Any) -> Any:
    """Return a form of ``value`` that compares equal only for identical stored values."""
    if value is None or isinstance(value, (str, bytes)):
        return (type(value).__name__, value)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else value.hex())
    if isinstance(value, decimal.Decimal):
        return ("decimal", str(value))
    if isinstance(value, (bytearray, memoryview)):
        return ("bytes", bytes(value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((repr(k), _stored(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_stored(v) for v in value))
    if isinstance(value, (datetime.datetime, datetime.time)):
        return (type(value).__name__, value.isoformat(), str(value.tzinfo))
    return (type(value).__name__, repr(value))


def same_stored(a: Any, b: Any) -> bool:
    """Return whether two database values are the same as stored (type and value, recursively).

    Stricter than ``==``: ``1``/``True``/``1.0``, ``Decimal("1.0")``/``Decimal("1.00")``,
    ``0.0``/``-0.0`` and JSON documents holding them differ. Two values this calls
    different but the database calls equal only cost a key too many.
    """
    if a is b:
        return True
    try:
        return _stored(a) == _stored(b)
    except Exception:  # an exotic value: call it changed
        return False


_MISSING = object()


def changed_columns(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Return the columns whose stored value differs between ``old`` and ``new`` (a column
    missing from one side counts as changed)."""
    return [
        c for c in dict.fromkeys([*old, *new])
        if c not in old or c not in new or not same_stored(old[c], new[c])
    ]


@dataclass(frozen=True)
class TableRead:
    """One table alias a read reads, as far as its dependency keys go.

    ``column``/``kind``/``values``: the equality anchor of the top conjunction on this
    alias (``values`` as bound for the database; ``None`` in it for ``IS NULL``), or
    ``column=None`` for none. ``nullable``: the alias is on the nullable side of an outer
    join.
    """

    table: str
    column: str | None = None
    kind: str = OTHER
    values: tuple[Any, ...] = field(default=())
    nullable: bool = False


def _anchor_spellings(read: TableRead) -> list[str] | None:
    if read.column is None or read.nullable or not read.values:
        return None
    return spell_all(read.kind, read.values)


def table_deps(read: TableRead) -> list[str]:
    """Return the dependency keys of one table alias of a read (rules 1 and 2)."""
    spelled = _anchor_spellings(read)
    if spelled is None:
        return [_keys.table_key(read.table)]
    return [f"{read.table}.{read.column}={text}" for text in dict.fromkeys(spelled)]


def change_deps(read: TableRead, columns: Sequence[str]) -> list[str] | None:
    """Return the field-change keys (or, without an anchor, table change keys) of the main
    table of a read whose conditions and order read ``columns``; ``None`` when the anchor
    cannot be spelled or the alias is nullable (keep the coarse keys).

    The caller adds the oids of the rows the read returned (:func:`oid`).
    """
    if read.nullable:
        return None
    if read.column is None:
        return [_keys.table_change_key(read.table, c) for c in dict.fromkeys([*columns, "*"])]
    spelled = _anchor_spellings(read)
    if spelled is None:
        return None
    changed = list(dict.fromkeys([*columns, read.column, "*"]))
    return list(dict.fromkeys(
        f"{read.table}.{read.column}={text}/{c}" for text in spelled for c in changed))


def oid(table: str, kind: str, value: Any) -> str | None:
    """Return the oid of the row whose primary key has database value ``value``, or
    ``None`` when it has no exact spelling (writes spell the stored key the same way)."""
    text = None if value is None else spell(kind, value)
    if text is None:
        return None
    return f"{table}:{text}"


def write_keys(
    table: str, pk: Any, old: Mapping[str, Any] | None = None, new: Mapping[str, Any] | None = None
) -> list[str]:
    """Return every key a write to one row emits.

    ``pk`` and the values of ``old`` and ``new`` (whole rows, ``None`` for an insert or a
    delete) are database values as stored, before any result processing.
    """
    out = [_keys.table_key(table), _keys.oid(table, pk)]
    versions = [row for row in (old, new) if row]
    changed = changed_columns(old, new) if old and new else ["*"]
    if versions:
        out.extend(_keys.table_change_key(table, c) for c in changed)
    seen = set(out)
    for row in versions:
        for column, value in row.items():
            text = _keys.canonical_value(value)
            for key in (f"{table}.{column}={text}", *(f"{table}.{column}={text}/{c}" for c in changed)):
                if key not in seen:
                    seen.add(key)
                    out.append(key)
    return out
