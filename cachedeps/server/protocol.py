"""Parse the memcache text and meta protocols: bytes in, commands out, no I/O.

:class:`TextParser` is incremental: :meth:`TextParser.feed` takes whatever the socket
delivered and returns every command completed by it, in order. Bytes that do not yet make a
whole command stay buffered (bounded: a command line may hold at most ``line_max`` bytes, a
multi-key ``get`` line ``multiget_max``, a data block ``item_max``).

A command is a tuple ``(op, args, data)``:

* storage commands (``set add replace append prepend cas``): ``args`` is
  ``(key, flags, exptime, cas, noreply)`` already validated, ``data`` the value;
* ``ms``: ``args`` is the list of line tokens, ``data`` the value, or ``None`` when the
  block did not end in ``\\r\\n`` (the executor reports it after checking the flags, as
  memcached does);
* every other command: ``args`` is the list of line tokens (``args[0] == op``), ``data``
  is ``None``.

Problems the parser settles itself come out as commands too, so that replies keep their
order: ``(OP_REPLY, noreply, reply_bytes)`` for an error reply, ``(OP_TOO_LARGE, args, op)``
for a value over the item limit (already swallowed) and ``(OP_CLOSE, reason, None)`` when
the connection must be dropped (an endless line). Nothing else is ever raised: a parser
fed arbitrary bytes only produces these tuples.
"""

from __future__ import annotations

import re

__all__ = [
    "TextParser",
    "OP_REPLY",
    "OP_TOO_LARGE",
    "OP_CLOSE",
    "STORAGE_OPS",
    "LINE_MAX",
    "KEY_MAX",
    "parse_uint",
    "parse_int",
    "LINE_READ_MAX",
]

OP_REPLY = b"\x00reply"
OP_TOO_LARGE = b"\x00too_large"
OP_CLOSE = b"\x00close"

LINE_MAX = 2048
#: the longest complete line taken in one piece (memcached's read buffer: a longer line
#: cannot arrive whole and is closed on as an endless line)
LINE_READ_MAX = 16384
KEY_MAX = 250
_UINT32 = 0xFFFFFFFF
_UINT64 = 0xFFFFFFFFFFFFFFFF
_INT32_MAX = 0x7FFFFFFF

STORAGE_OPS = frozenset((b"set", b"add", b"replace", b"append", b"prepend", b"cas"))
_BLOCK_OPS = STORAGE_OPS | {b"ms"}
# Commands whose lines may be longer than ``line_max`` (up to ``multiget_max``): multi-key
# reads, as in memcached, and the dependency extension's multi-key commands.
_LONG_OPS = frozenset((b"get", b"gets", b"gat", b"gats", b"cd_link", b"cd_invalidate"))
_MULTIGET_PREFIXES = tuple(op + b" " for op in _LONG_OPS)

_ERROR = b"ERROR\r\n"
_BAD_FORMAT = b"CLIENT_ERROR bad command line format\r\n"
_BAD_CHUNK = b"CLIENT_ERROR bad data chunk\r\n"


# C's strtol/strtoul in base 10 as memcached's safe_strto* use them: leading white space,
# a sign, digits, then the end of the token or a white-space byte (the rest is ignored).
_NUMBER = re.compile(rb"[\t\n\x0b\x0c\r ]*([+-]?)([0-9]+)(?:[\t\n\x0b\x0c\r ]|\Z)")
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def parse_uint(token: bytes, limit: int = _UINT64) -> int:
    """Return ``token`` as an unsigned decimal no larger than ``limit``, or ``-1``.

    As memcached's ``safe_strtoull``: a leading ``+`` and white space are taken, a negative
    number is refused unless it wraps to a positive one (``-0``).
    """
    if token.isdigit():
        value = int(token)
        return value if value <= limit else -1
    m = _NUMBER.match(token)
    if m is None:
        return -1
    value = int(m.group(2))
    if value > _UINT64:
        return -1
    if m.group(1) == b"-":
        value = -value & _UINT64
        if value > _INT64_MAX:
            return -1
    return value if value <= limit else -1


def parse_int(token: bytes) -> int | None:
    """Return ``token`` as memcached's ``safe_strtol`` reads it, or ``None``.

    C's ``strtol`` (a 64-bit long: ``+``, white space, out of range refused) stored into a
    32-bit int, so ``2147483648`` wraps to ``-2147483648`` as it does in memcached.
    """
    if token.isdigit():
        value = int(token)
        if value <= _INT32_MAX:
            return value
    m = _NUMBER.match(token)
    if m is None:
        return None
    value = int(m.group(2))
    if m.group(1) == b"-":
        value = -value
    if not _INT64_MIN <= value <= _INT64_MAX:
        return None
    return ((value + (1 << 31)) & _UINT32) - (1 << 31)


class TextParser:
    """Split a byte stream into memcache text/meta commands, incrementally.

    Args:
        item_max: the item limit, counted as memcached counts an item (value, key and 59
            bytes; 63 with non-zero flags); larger values are swallowed and reported.
        line_max: the longest command line (memcached: 2048).
        multiget_max: the longest ``get``/``gets``/``gat``/``gats``/``cd_link``/``cd_invalidate``
            line.
    """

    __slots__ = ("_rest", "_chunks", "_chunked", "_pending", "_swallow",
                 "item_max", "line_max", "multiget_max")

    def __init__(self, item_max: int = 1024 * 1024, line_max: int = LINE_MAX,
                 multiget_max: int = 1024 * 1024) -> None:
        self._rest = b""
        self._chunks: list[bytes] = []
        self._chunked = 0
        # (op, args, need) of a storage command waiting for its data block
        self._pending: tuple[bytes, object, int] | None = None
        self._swallow = 0
        self.item_max = item_max
        self.line_max = line_max
        self.multiget_max = multiget_max

    @property
    def idle(self) -> bool:
        """Return whether nothing is buffered: the next bytes start a command."""
        return not self._rest and self._pending is None and not self._swallow

    @property
    def buffered(self) -> int:
        """Return how many received bytes wait for the rest of their command."""
        return len(self._rest) + self._chunked

    def feed(self, data: bytes) -> list[tuple]:
        """Take the next bytes of the stream; return the commands they complete, in order."""
        out: list[tuple] = []
        if self._swallow:
            if len(data) <= self._swallow:
                self._swallow -= len(data)
                return out
            data = data[self._swallow:]
            self._swallow = 0
        if self._pending is not None:
            need = self._pending[2]
            self._chunks.append(data)
            self._chunked += len(data)
            if self._chunked < need:
                return out
            buf = b"".join(self._chunks)
            self._chunks = []
            self._chunked = 0
            op, args, _ = self._pending
            self._pending = None
            self._finish_block(out, op, args, buf[: need])
            pos = need
        elif self._rest:
            buf = self._rest + data
            pos = 0
        else:
            buf = data
            pos = 0
        end = len(buf)
        find = buf.find
        append = out.append
        line_max = self.line_max
        while pos < end:
            eol = find(b"\n", pos)
            if eol < 0:
                self._rest = buf[pos:]
                self._check_partial_line(out)
                return out
            line = buf[pos:eol]
            pos = eol + 1
            if line[-1:] == b"\r":
                line = line[:-1]
            tokens = line.split(b" ")
            if b"" in tokens:
                tokens = [t for t in tokens if t]
                if not tokens:
                    append((OP_REPLY, False, _ERROR))
                    continue
            op = tokens[0]
            if len(line) > line_max and (len(line) > (self.multiget_max if op in _LONG_OPS
                                                      else LINE_READ_MAX)):
                append((OP_CLOSE, b"command line too long", None))
                self._rest = b""
                return out
            if op in _BLOCK_OPS:
                block = self._storage_line(out, op, tokens)
                if block is None:
                    continue
                args, need = block
                if need < 0:
                    # too large: swallow the block
                    skip = -need
                    if end - pos >= skip:
                        pos += skip
                        continue
                    self._swallow = skip - (end - pos)
                    self._rest = b""
                    return out
                if end - pos >= need:
                    self._finish_block(out, op, args, buf[pos:pos + need])
                    pos += need
                    continue
                self._pending = (op, args, need)
                if pos < end:
                    rest = buf[pos:]
                    self._chunks = [rest]
                    self._chunked = len(rest)
                self._rest = b""
                return out
            append((op, tokens, None))
        self._rest = b""
        return out

    def _check_partial_line(self, out: list[tuple]) -> None:
        rest = self._rest
        if len(rest) <= self.line_max:
            return
        head = rest.lstrip(b" ")
        if len(rest) - len(head) <= 100 and head.startswith(_MULTIGET_PREFIXES) \
                and len(rest) <= self.multiget_max:
            return
        out.append((OP_CLOSE, b"command line too long", None))
        self._rest = b""

    def _storage_line(self, out: list[tuple], op: bytes, tokens: list[bytes]):
        """Validate a storage command line; return ``(args, need)`` or ``None`` if answered.

        ``need`` is the size of the data block with its ``\\r\\n``; negative when the block
        must be swallowed because the value is too large.
        """
        n = len(tokens)
        if op == b"ms":
            if n < 3:
                out.append((OP_REPLY, False, _ERROR if n < 2 else _BAD_FORMAT))
                return None
            if len(tokens[1]) > KEY_MAX:
                out.append((OP_REPLY, False, _BAD_FORMAT))
                return None
            vlen = parse_uint(tokens[2], _INT32_MAX - 2)
            if vlen < 0:
                out.append((OP_REPLY, False, _BAD_FORMAT))
                return None
            if vlen > self.item_max:
                out.append((OP_TOO_LARGE, tokens, op))
                return tokens, -(vlen + 2)
            return tokens, vlen + 2
        noreply = tokens[-1] == b"noreply"
        base = 6 if op == b"cas" else 5
        if n != base and n != base + 1:
            out.append((OP_REPLY, False, _ERROR))
            return None
        key = tokens[1]
        if len(key) > KEY_MAX:
            out.append((OP_REPLY, noreply, _BAD_FORMAT))
            return None
        flags = parse_uint(tokens[2])  # memcached keeps the low 32 bits of a 64-bit number
        exptime = parse_int(tokens[3])
        vlen_parsed = parse_int(tokens[4])
        if flags < 0 or exptime is None or vlen_parsed is None:
            out.append((OP_REPLY, noreply, _BAD_FORMAT))
            return None
        vlen = vlen_parsed
        cas = 0
        if base == 6:
            cas = parse_uint(tokens[5])
            if cas < 0:
                out.append((OP_REPLY, noreply, _BAD_FORMAT))
                return None
        if vlen < 0 or vlen > _INT32_MAX - 2:
            out.append((OP_REPLY, noreply, _BAD_FORMAT))
            return None
        flags &= _UINT32
        args = (key, flags, exptime, cas, noreply)
        # memcached's item size: header 48, key + 1, value + 2, CAS 8, flags 4 when not 0
        if vlen + len(key) + (63 if flags else 59) > self.item_max:
            out.append((OP_TOO_LARGE, args, op))
            return args, -(vlen + 2)
        return args, vlen + 2

    @staticmethod
    def _finish_block(out: list[tuple], op: bytes, args, block: bytes) -> None:
        good = block[-2:] == b"\r\n"
        if op == b"ms":
            out.append((op, args, block[:-2] if good else None))
        elif good:
            out.append((op, args, block[:-2]))
        else:
            out.append((OP_REPLY, args[4], _BAD_CHUNK))
