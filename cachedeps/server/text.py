"""The memcache text protocol's data commands, answered as memcached 1.6 answers them.

Each handler takes the parsed command (see :mod:`cachedeps.server.protocol`) and returns
the reply bytes (``b""`` for none); the caller batches replies into one write.
"""

from __future__ import annotations

from typing import Any, Callable

from ..errors import CachedepsError, InvalidKey, ValueTooLarge
from .context import ServerContext, decode_key
from .protocol import KEY_MAX, parse_int, parse_uint

__all__ = ["TextCommands"]

_END = b"END\r\n"
_ERROR = b"ERROR\r\n"
_STORED = b"STORED\r\n"
_NOT_STORED = b"NOT_STORED\r\n"
_EXISTS = b"EXISTS\r\n"
_NOT_FOUND = b"NOT_FOUND\r\n"
_DELETED = b"DELETED\r\n"
_TOUCHED = b"TOUCHED\r\n"
_BAD_FORMAT = b"CLIENT_ERROR bad command line format\r\n"
_BAD_EXPTIME = b"CLIENT_ERROR invalid exptime argument\r\n"
_BAD_DELTA = b"CLIENT_ERROR invalid numeric delta argument\r\n"
_NON_NUMERIC = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
_TOO_LARGE = b"SERVER_ERROR object too large for cache\r\n"
_DELETE_USAGE = b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
_STATUS = {"STORED": _STORED, "NOT_STORED": _NOT_STORED, "EXISTS": _EXISTS, "NOT_FOUND": _NOT_FOUND}


class TextCommands:
    """get/gets/gat/gats, the storage commands, delete, incr/decr and touch."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.store = ctx.store

    def handlers(self) -> dict:
        """Return ``{op: handler}`` for the commands this class answers."""
        return {
            b"get": self.get, b"gets": self.gets, b"gat": self.gat, b"gats": self.gats,
            b"set": self.set, b"add": self.add, b"replace": self.replace,
            b"append": self.append, b"prepend": self.prepend, b"cas": self.cas,
            b"delete": self.delete, b"incr": self.incr, b"decr": self.decr,
            b"touch": self.touch,
        }

    # -- retrieval -----------------------------------------------------------------------

    def get(self, tokens: list[bytes], _data: object) -> bytes:
        """Answer ``get <key>+``."""
        n = len(tokens)
        if n == 2:  # the common case, without building a list
            return self.get_key(tokens[1])
        if n < 2:
            return _ERROR
        return self._retrieve(tokens[1:], self.store.get_item, False)

    def get_key(self, key: bytes) -> bytes:
        """Answer ``get <key>`` for one key."""
        if len(key) > KEY_MAX:
            return _BAD_FORMAT
        try:
            item = self.store.get_item(decode_key(key))
        except (ValueError, CachedepsError):
            return _BAD_FORMAT
        if item is None:
            return _END
        value = item[0]
        return b"VALUE %b %d %d\r\n%b\r\nEND\r\n" % (key, item[1], len(value), value)

    def gets(self, tokens: list[bytes], _data: object) -> bytes:
        """Answer ``gets <key>+`` (values with their CAS ids)."""
        if len(tokens) < 2:
            return _ERROR
        return self._retrieve(tokens[1:], self.store.get_item, True)

    def gat(self, tokens: list[bytes], _data: object, with_cas: bool = False) -> bytes:
        """Answer ``gat <exptime> <key>*`` (get and touch)."""
        if len(tokens) < 2:
            return _ERROR
        exptime = parse_int(tokens[1])
        if exptime is None:
            return _BAD_EXPTIME
        gat = self.store.gat
        return self._retrieve(tokens[2:], lambda key: gat(key, exptime), with_cas)

    def gats(self, tokens: list[bytes], data: object) -> bytes:
        """Answer ``gats <exptime> <key>*`` (get and touch, with CAS ids)."""
        return self.gat(tokens, data, True)

    @staticmethod
    def _retrieve(keys: list[bytes], fetch: Callable[[str], Any], with_cas: bool) -> bytes:
        """Return the VALUE lines of the keys found by ``fetch`` and END, or a format error."""
        out = []
        for key in keys:
            if len(key) > KEY_MAX:
                return _BAD_FORMAT
            try:
                item = fetch(decode_key(key))
            except (ValueError, CachedepsError):
                return _BAD_FORMAT
            if item is not None:
                value = item[0]
                if with_cas:
                    out.append(b"VALUE %b %d %d %d\r\n%b\r\n" % (key, item[1], len(value), item[2], value))
                else:
                    out.append(b"VALUE %b %d %d\r\n%b\r\n" % (key, item[1], len(value), value))
        out.append(_END)
        return b"".join(out)

    # -- storage -------------------------------------------------------------------------

    def set(self, args: tuple, value: bytes) -> bytes:
        """Answer ``set`` (the line was validated by the parser)."""
        return self._store("set", args, value, None)

    def add(self, args: tuple, value: bytes) -> bytes:
        """Answer ``add``: store only if the key holds nothing."""
        return self._store("add", args, value, None)

    def replace(self, args: tuple, value: bytes) -> bytes:
        """Answer ``replace``: store only if the key holds something."""
        return self._store("replace", args, value, None)

    def append(self, args: tuple, value: bytes) -> bytes:
        """Answer ``append``."""
        return self._store("append", args, value, None)

    def prepend(self, args: tuple, value: bytes) -> bytes:
        """Answer ``prepend``."""
        return self._store("prepend", args, value, None)

    def cas(self, args: tuple, value: bytes) -> bytes:
        """Answer ``cas``: store only if the CAS id is unchanged."""
        return self._store("set", args, value, args[3])

    def _store(self, mode: str, args: tuple, value: bytes, cas: int | None) -> bytes:
        key, flags, exptime, _, noreply = args
        try:
            skey = decode_key(key)
            if mode == "set" and cas is None:
                self.store.set(skey, value, exptime, flags)
                return b"" if noreply else _STORED
            status = self.store.store_item(mode, skey, value, exptime, flags, compare_cas=cas)[0]
        except ValueTooLarge:
            self.ctx.store_too_large += 1
            if mode == "set" and cas is None:
                # As memcached: a set that failed must not leave the old value readable.
                self.store.delete(skey)
            return b"" if noreply else _TOO_LARGE
        except (ValueError, CachedepsError):
            return b"" if noreply else _BAD_FORMAT
        return b"" if noreply else _STATUS[status]

    def too_large(self, args, op: bytes) -> bytes:
        """Answer a storage command whose value was over the item limit (already swallowed).

        As memcached does, a failed ``set`` also removes the old value so that it cannot be
        read as current.
        """
        self.ctx.store_too_large += 1
        if op == b"ms":
            return _TOO_LARGE
        key, noreply = args[0], args[4]
        if op == b"set":
            try:
                self.store.delete(decode_key(key))
            except (ValueError, CachedepsError):
                pass
        return b"" if noreply else _TOO_LARGE

    # -- delete, counters, touch ---------------------------------------------------------

    def delete(self, tokens: list[bytes], _data: object) -> bytes:
        """Answer ``delete <key> [0] [noreply]``."""
        n = len(tokens)
        if n < 2 or n > 4:
            return _ERROR
        noreply = False
        if n > 2:
            hold_zero = tokens[2] == b"0"
            noreply = tokens[-1] == b"noreply"
            if not ((n == 3 and (hold_zero or noreply)) or (n == 4 and hold_zero and noreply)):
                return b"" if noreply else _DELETE_USAGE  # memcached: noreply holds for errors
        key = tokens[1]
        if len(key) > KEY_MAX:
            return b"" if noreply else _BAD_FORMAT
        try:
            found = self.store.delete(decode_key(key))
        except (ValueError, CachedepsError):
            return b"" if noreply else _BAD_FORMAT
        if noreply:
            return b""
        return _DELETED if found else _NOT_FOUND

    def incr(self, tokens: list[bytes], _data: object, up: bool = True) -> bytes:
        """Answer ``incr <key> <delta> [noreply]``."""
        n = len(tokens)
        if n != 3 and n != 4:
            return _ERROR
        noreply = tokens[-1] == b"noreply"
        key = tokens[1]
        if len(key) > KEY_MAX:
            return b"" if noreply else _BAD_FORMAT
        delta = parse_uint(tokens[2])
        if delta < 0:
            return b"" if noreply else _BAD_DELTA
        try:
            skey = decode_key(key)
            value = self.store.incr(skey, delta) if up else self.store.decr(skey, delta)
        except InvalidKey:
            return b"" if noreply else _BAD_FORMAT
        except (ValueError, CachedepsError):
            return b"" if noreply else _NON_NUMERIC
        if noreply:
            return b""
        return _NOT_FOUND if value is None else b"%d\r\n" % value

    def decr(self, tokens: list[bytes], data: object) -> bytes:
        """Answer ``decr <key> <delta> [noreply]`` (stops at 0)."""
        return self.incr(tokens, data, False)

    def touch(self, tokens: list[bytes], _data: object) -> bytes:
        """Answer ``touch <key> <exptime> [noreply]``."""
        n = len(tokens)
        if n != 3 and n != 4:
            return _ERROR
        noreply = tokens[-1] == b"noreply"
        key = tokens[1]
        if len(key) > KEY_MAX:
            return b"" if noreply else _BAD_FORMAT
        exptime = parse_int(tokens[2])
        if exptime is None:
            return b"" if noreply else _BAD_EXPTIME
        try:
            found = self.store.touch(decode_key(key), exptime)
        except (ValueError, CachedepsError):
            return b"" if noreply else _BAD_FORMAT
        if noreply:
            return b""
        return _TOUCHED if found else _NOT_FOUND

