"""Store key validation and the spelling of dependency keys.

Both adapters build dependency keys with these functions only, so a write through
SQLAlchemy invalidates what Django cached from the same table, and the reverse:

=====================  ==========================  =========================================
kind                   spelling                    emitted by
=====================  ==========================  =========================================
oid (one row)          ``book:42``                 every write to that row
table                  ``book``                    every write to the table
all rows               ``book:*``                  writes whose rows are unknown (raw SQL,
                                                   update/delete statements)
field value            ``book.author_id=7``        every write to a row holding that value
                                                   (old and new values, every column)
field change           ``book.author_id=7/title``  an update changing ``title`` of a row
                                                   holding ``author_id=7`` (before or after);
                       ``book.author_id=7/*``      an insert or delete of such a row
table change           ``book/title``              an update changing ``title`` of any row;
                       ``book/*``                  an insert or delete of any row
=====================  ==========================  =========================================

Field-change keys let a query say *which* changes can alter it: the rows of
``WHERE author_id = 7 ORDER BY created`` come and go, or move, only through an insert or a
delete of a row with ``author_id = 7`` or an update of such a row changing ``author_id`` or
``created``; a change to any other column can only alter the rows it returned, whose oids it
depends on too. Table change keys say the same of a query without such an equality: the rows
of ``ORDER BY created DESC LIMIT 15`` change only through an insert, a delete, an update
changing ``created`` or an update of a row it returned.

An entry that depends on an oid, a field-value key or a change key of table ``t`` is also invalidated by
``t:*``; :func:`implied` gives the keys to check for one dependency key.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import uuid
from typing import Any, Iterable, Mapping

from .api import MAX_KEY_LENGTH
from .errors import InvalidKey

__all__ = [
    "check_key",
    "safe_key",
    "oid",
    "table_key",
    "all_rows_key",
    "field_key",
    "change_key",
    "table_change_key",
    "row_keys",
    "implied",
    "table_of",
    "canonical_value",
    "keyable",
    "expand",
]

# Values longer than this are replaced by a digest inside field-value keys.
_MAX_VALUE_REPR = 64


def check_key(key: str) -> bytes:
    """Validate a store key and return it encoded as UTF-8.

    Raises:
        InvalidKey: empty, over 250 bytes, or holding whitespace or control characters.
    """
    if not isinstance(key, str):
        raise InvalidKey(f"Key must be str, got {type(key).__name__}: {key!r}")
    raw = key.encode("utf-8")
    if not raw:
        raise InvalidKey("Key is empty; memcache keys are 1 to 250 bytes")
    if len(raw) > MAX_KEY_LENGTH:
        raise InvalidKey(
            f"Key is {len(raw)} bytes, over the limit of {MAX_KEY_LENGTH}: {key[:60]!r}...; "
            "hash long keys (cachedeps.keys.safe_key does)"
        )
    if not key.isprintable() or " " in key:
        raise InvalidKey(
            f"Key contains whitespace or control characters: {key!r}; "
            "memcache keys are printable without spaces (cachedeps.keys.safe_key hashes any text)"
        )
    return raw


def _valid(key: str) -> bool:
    return key.isprintable() and " " not in key and len(key.encode("utf-8")) <= MAX_KEY_LENGTH


def safe_key(prefix: str, text: str) -> str:
    """Return ``prefix + text`` if it is a valid store key, else ``prefix`` + a digest of text."""
    key = prefix + text
    if key and _valid(key):
        return key
    return prefix + "#" + hashlib.blake2b(text.encode("utf-8"), digest_size=20).hexdigest()


def canonical_value(value: Any) -> str:
    """Spell a column value the same way in every adapter.

    ``None`` → ``null``; booleans → ``1``/``0`` (as databases store them, so ``flag=True``
    and a raw ``1`` agree); integers (and integral Decimals) in decimal; floats by ``repr``; dates/times ISO 8601; UUIDs as hex with dashes; bytes as
    hex; text as itself. Long or unprintable spellings become a digest (``#`` and the first 32
    hex digits of their UTF-8 SHA-256).
    """
    if value is None:
        text = "null"
    elif value is True:
        text = "1"
    elif value is False:
        text = "0"
    elif isinstance(value, int):
        text = str(int(value))
    elif isinstance(value, decimal.Decimal):
        text = str(int(value)) if value == value.to_integral_value() else str(value.normalize())
    elif isinstance(value, float):
        text = str(int(value)) if value.is_integer() else repr(value)
    elif isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        text = value.isoformat()
    elif isinstance(value, uuid.UUID):
        text = str(value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        text = bytes(value).hex()
    else:
        text = str(value)
    if len(text) > _MAX_VALUE_REPR or not _valid(text):
        # SHA-256, not BLAKE2: capture triggers (cachedeps.capture) compute the same digest
        # in SQL, and PostgreSQL and MySQL have SHA-256 built in.
        text = "#" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
    return text


def keyable(value: Any) -> bool:
    """Return whether a read may depend on a field-value key for ``value``.

    A first filter on the Python type only (``None``, booleans, integers, text); the
    adapters decide with :func:`cachedeps.algebra.spell`, which also knows the column's kind
    and collation and takes the value as bound for the database.
    """
    return value is None or isinstance(value, (bool, int, str))


def oid(table: str, pk: Any) -> str:
    """Return the oid of one row: ``"<table>:<pk>"``."""
    return f"{table}:{canonical_value(pk)}"


def table_key(table: str) -> str:
    """Return the key every write to ``table`` emits."""
    return table


def all_rows_key(table: str) -> str:
    """Return the key emitted by a write whose rows are unknown."""
    return f"{table}:*"


def field_key(table: str, column: str, value: Any) -> str:
    """Return the key for rows of ``table`` whose ``column`` equals ``value``."""
    return f"{table}.{column}={canonical_value(value)}"


def change_key(table: str, column: str, value: Any, changed: str) -> str:
    """Return the key for a change of column ``changed`` (``"*"``: an insert or a delete)
    of a row of ``table`` whose ``column`` equals ``value``."""
    return f"{table}.{column}={canonical_value(value)}/{changed}"


def table_change_key(table: str, changed: str) -> str:
    """Return the key for a change of column ``changed`` (``"*"``: an insert or a delete)
    of any row of ``table``."""
    return f"{table}/{changed}"


def row_keys(
    table: str, pk: Any, old: Mapping[str, Any] | None = None, new: Mapping[str, Any] | None = None
) -> list[str]:
    """Return every key a write to one row emits (:func:`cachedeps.algebra.write_keys`).

    ``pk``, ``old`` and ``new`` are database values as stored (before result processing);
    give whole rows, since a column missing from one side counts as changed. The result
    holds the table key, the oid, a table change key for each changed column (``*`` for an
    insert or a delete; changes are found by comparing stored values, so JSON ``1`` and
    ``true`` differ), a field-value key for each column value of each version and a
    field-change key for each column value and each changed column, without repeats.
    """
    from .algebra import write_keys

    return write_keys(table, pk, old, new)


def table_of(key: str) -> str:
    """Return the table a dependency key belongs to (the key itself for a table key)."""
    for i, ch in enumerate(key):
        if ch == ":" or ch == "." or ch == "/":
            return key[:i]
    return key


def implied(key: str) -> tuple[str, ...]:
    """Return the keys whose change invalidates an entry depending on ``key``.

    An oid, a field-value key or a change key is also invalidated by its table's ``all rows``
    key; a table key only by itself (every write to a table emits the table key).
    """
    table = table_of(key)
    if table == key or key.endswith(":*"):
        return (key,)
    return (key, all_rows_key(table))


def expand(keys: Iterable[str]) -> list[str]:
    """Return ``keys`` with their implied keys added, without repeats, order kept."""
    out: list[str] = []
    seen: set[str] = set()
    for key in keys:
        for k in implied(key):
            if k not in seen:
                seen.add(k)
                out.append(k)
    return out
