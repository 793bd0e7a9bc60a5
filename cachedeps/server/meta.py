"""The memcache meta protocol: ``mg ms md ma mn me`` with their flags.

Leases and stale-while-revalidate follow memcached: ``mg N<ttl>`` on a miss creates an
empty item and answers ``W`` (won: fill it) to one client and ``Z`` to the others; ``md I``
marks an item stale (``X``) under a new CAS id, and the next reader wins the refill;
``mg R<secs>`` wins a refill when the TTL left is below ``secs``; ``ms I C<cas>`` with an
older CAS stores the value but keeps it marked stale. ``E<cas>`` on ``ms`` gives the new
item an explicit CAS id (the embedded store keeps ids increasing past it).
"""

from __future__ import annotations

import base64
import binascii

from ..errors import CachedepsError, ValueTooLarge
from .context import ServerContext, decode_key
from .protocol import KEY_MAX, parse_int, parse_uint

__all__ = ["MetaCommands"]

_ERROR = b"ERROR\r\n"
_EN = b"EN\r\n"
_HD = b"HD"
_BAD_FORMAT = b"CLIENT_ERROR bad command line format\r\n"
_BAD_TOKEN = b"CLIENT_ERROR bad token in command line format\r\n"
_BAD_FLAG = b"CLIENT_ERROR invalid flag\r\n"
_DUP_FLAG = b"CLIENT_ERROR duplicate flag\r\n"
_BAD_OR_DUP = b"CLIENT_ERROR invalid or duplicate flag\r\n"
_BAD_KEY = b"CLIENT_ERROR error decoding key\r\n"
_LONG_OPAQUE = b"CLIENT_ERROR opaque token too long\r\n"
_BAD_CHUNK = b"CLIENT_ERROR bad data chunk\r\n"
_TOO_LARGE = b"SERVER_ERROR object too large for cache\r\n"
_NON_NUMERIC = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"

_BAD_DELTA = b"CLIENT_ERROR invalid numeric delta value\r\n"
_BAD_INITIAL = b"CLIENT_ERROR invalid numeric initial value\r\n"
_M_LENGTH = b"CLIENT_ERROR incorrect length for M token\r\n"

# Every meta command takes every flag memcached knows (ignoring those it has no use for),
# checking the tokens of the numeric ones, as memcached's shared flag pass does; E (an
# explicit CAS id) and x (md: drop the value) are memcached 1.6.21's, newer than some builds.
_KNOWN = frozenset(b"bcfhklqsuvtOILPCNRTDFJMEx")
_MG_FLAGS = _MS_FLAGS = _MD_FLAGS = _MA_FLAGS = _KNOWN
_MS_MODES = {b"S": "set", b"s": "set", b"E": "add", b"e": "add", b"A": "append", b"a": "append",
             b"P": "prepend", b"p": "prepend", b"R": "replace", b"r": "replace"}
_MS_STATUS = {"STORED": b"HD", "NOT_STORED": b"NS", "EXISTS": b"EX", "NOT_FOUND": b"NF"}


def _parse_flags(tokens: list[bytes], start: int, allowed: frozenset, dup_error: bytes):
    """Return ``{flag_byte: token}`` (in request order) or an error reply.

    ``dup_error`` picks the family: ``mg``/``ms`` name each error, ``md``/``ma`` answer
    ``invalid or duplicate flag`` for all of them (as memcached does).
    """
    named = dup_error is _DUP_FLAG
    opts: dict[int, bytes] = {}
    for tok in tokens[start:]:
        c = tok[0]
        if c not in allowed:
            return _BAD_FLAG if named else _BAD_OR_DUP
        if c in opts:
            return dup_error
        val = tok[1:]
        if c in _NUMERIC:
            err = _check_token(c, val)
            if err is not None:
                return err if named else _BAD_OR_DUP
        opts[c] = val
    return opts


def _check_token(c: int, val: bytes) -> bytes | None:
    if c == 67 or c == 69:  # C E
        return _BAD_TOKEN if parse_uint(val) < 0 else None
    if c == 77:  # M
        return _M_LENGTH if len(val) != 1 else None
    if c == 70:  # F
        return _BAD_FORMAT if parse_uint(val) < 0 else None
    if c == 68:  # D
        return _BAD_DELTA if parse_uint(val) < 0 else None
    if c == 74:  # J
        return _BAD_INITIAL if parse_uint(val) < 0 else None
    return _BAD_TOKEN if parse_int(val) is None else None  # N R T


_NUMERIC = frozenset(b"CEMFDJNRT")


def _key(key: bytes, opts: dict) -> str | bytes:
    """Return the store key (base64-decoded with ``b``), or an error reply."""
    if len(key) > KEY_MAX:
        return _BAD_FORMAT
    if 98 in opts:  # b
        try:
            key = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            return _BAD_KEY
        if not key:
            return _BAD_KEY
    try:
        return decode_key(key)
    except UnicodeDecodeError:
        return _BAD_KEY


def _echo(out: list[bytes], opts: dict, key: bytes) -> None:
    """Add the k/O/b echo flags, in request order."""
    for c, tok in opts.items():
        if c == 107:  # k, and b right after it when the key is base64
            out.append(b"k" + key)
            if 98 in opts:
                out.append(b"b")
        elif c == 79:  # O
            out.append(b"O" + tok)


class MetaCommands:
    """Answer the meta commands."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.store = ctx.store

    def handlers(self) -> dict:
        """Return ``{op: handler}`` for the commands this class answers."""
        return {b"mg": self.mg, b"ms": self.ms, b"md": self.md, b"ma": self.ma,
                b"mn": self.mn, b"me": self.me}

    def mn(self, tokens: list[bytes], _data: object) -> bytes:
        """Answer ``mn`` (the end marker of a pipeline)."""
        return b"MN\r\n"

    def _common(self, tokens: list[bytes], allowed: frozenset, dup_error: bytes):
        self.ctx.cmd_meta += 1
        opts = _parse_flags(tokens, 2, allowed, dup_error)
        if opts.__class__ is bytes:
            return opts, None
        opaque = opts.get(79)
        if opaque is not None and len(opaque) > 32:
            return _LONG_OPAQUE, None
        skey = _key(tokens[1], opts)
        if isinstance(skey, bytes):
            return (_BAD_OR_DUP if skey is _BAD_KEY and dup_error is _BAD_OR_DUP else skey), None
        return opts, skey

    # -- mg ------------------------------------------------------------------------------

    def mg(self, tokens: list[bytes], _data: object) -> bytes:
        """Answer ``mg <key> <flags>*``."""
        if len(tokens) < 2:
            return _ERROR
        opts, skey = self._common(tokens, _MG_FLAGS, _DUP_FLAG)
        if skey is None:
            return opts
        nums = {}
        for c in (78, 82, 84):  # N R T
            if c in opts:
                v = parse_int(opts[c])
                if v is None:
                    return _BAD_TOKEN
                nums[c] = v
        store = self.store
        info = store.peek(skey) if (104 in opts or 108 in opts) else None  # h l: before access
        try:
            if 84 in nums:
                item = store.gat(skey, nums[84])
            elif 117 in opts:  # u: no LRU bump, the item stays unfetched (mg h says h0)
                item = store.peek_item(skey)
            else:
                item = store.get_item(skey)
        except (ValueError, CachedepsError):
            return _BAD_FORMAT
        won = False
        if item is None:
            if 78 not in nums:
                return b"" if 113 in opts else self._miss(opts, tokens[1])
            explicit = parse_uint(opts[69]) if 69 in opts else -1  # E: the new item's CAS id
            if explicit == 0 or (69 in opts and explicit < 0):
                return _BAD_TOKEN
            status, cas = store.store_item("add", skey, b"", nums[78],
                                           cas_id=explicit if explicit > 0 else None)
            item = store.get_item(skey)
            if item is None:
                return b"" if 113 in opts else self._miss(opts, tokens[1])
            if status == "STORED":
                won = True
                self.ctx.lease(skey, item[2])[2] = True
            info = None
        rec = self.ctx.lease_if_any(skey, item[2])
        sent = bool(rec and rec[2]) and not won
        stale = bool(rec and rec[1])
        ttl_needed = 116 in opts or 82 in nums
        ttl = -1
        if ttl_needed or info is None and (104 in opts or 108 in opts):
            now = store.peek(skey)
            if now is not None:
                ttl = now[1]
                if info is None:
                    info = now
        if not won and not sent:
            if stale or (82 in nums and ttl != -1 and ttl < nums[82]):
                won = True
                self.ctx.lease(skey, item[2])[2] = True
        value = item[0]
        out = [b"VA %d" % len(value) if 118 in opts else _HD]
        key = tokens[1]
        for c, tok in opts.items():
            if c == 99:  # c
                out.append(b"c%d" % item[2])
            elif c == 102:  # f
                out.append(b"f%d" % item[1])
            elif c == 104:  # h
                out.append(b"h1" if info and info[3] else b"h0")
            elif c == 107:  # k
                out.append(b"k" + key)
                if 98 in opts:
                    out.append(b"b")
            elif c == 108:  # l
                out.append(b"l%d" % (info[2] if info else 0))
            elif c == 79:  # O
                out.append(b"O" + tok)
            elif c == 115:  # s
                out.append(b"s%d" % len(value))
            elif c == 116:  # t
                out.append(b"t%d" % ttl)
        if sent:
            out.append(b"Z")
        if stale:
            out.append(b"X")
        if won:
            out.append(b"W")
        if 118 in opts:
            return b" ".join(out) + b"\r\n" + value + b"\r\n"
        return b" ".join(out) + b"\r\n"

    # -- ms ------------------------------------------------------------------------------

    def ms(self, tokens: list[bytes], value: bytes | None) -> bytes:
        """Answer ``ms <key> <datalen> <flags>*`` (the block was read by the parser)."""
        self.ctx.cmd_meta += 1
        opts = _parse_flags(tokens, 3, _MS_FLAGS, _DUP_FLAG)
        if opts.__class__ is bytes:
            return opts
        if 79 in opts and len(opts[79]) > 32:
            return _LONG_OPAQUE
        skey = _key(tokens[1], opts)
        if isinstance(skey, bytes):
            return skey
        flags = parse_uint(opts[70]) if 70 in opts else 0
        if flags < 0:
            return _BAD_FORMAT
        flags &= 0xFFFFFFFF  # as memcached: the low 32 bits of a 64-bit number
        ttl: int | None = 0
        if 84 in opts:
            ttl = parse_int(opts[84])
            if ttl is None:
                return _BAD_TOKEN
        compare = explicit = None
        for c in (67, 69):  # C E
            if c in opts:
                v = parse_uint(opts[c])
                if v < 0:
                    return _BAD_TOKEN
                if c == 67:
                    compare = v
                else:
                    explicit = v
        mode: str | None = "set"
        if 77 in opts:
            mode = _MS_MODES.get(opts[77])
            if mode is None:
                return b"CLIENT_ERROR invalid mode for ms M token\r\n"
        if value is None:
            return _BAD_CHUNK
        store = self.store
        stale = False
        sent = False
        if compare is not None and 73 in opts:  # I: an older CAS stores, marked stale
            current = store.peek(skey)
            if current is not None and compare < current[0]:
                # As memcached: the item keeps its TTL and whether a win was handed out.
                compare, stale = None, True
                ttl = current[1] if current[1] > 0 else 0
                rec = self.ctx.lease_if_any(skey, current[0])
                sent = bool(rec and rec[2])
        try:
            status, cas = store.store_item(mode, skey, value, ttl, flags,
                                           compare_cas=compare, cas_id=explicit)
        except ValueTooLarge:
            self.ctx.store_too_large += 1
            return _TOO_LARGE
        except (ValueError, CachedepsError):
            return _BAD_FORMAT
        if stale and status == "STORED":
            rec = self.ctx.lease(skey, cas)
            rec[1], rec[2] = True, sent
        code = _MS_STATUS[status]
        if code == b"HD" and 113 in opts:
            return b""
        out = [code]
        for c, tok in opts.items():
            if c == 107:
                out.append(b"k" + tokens[1])
                if 98 in opts:
                    out.append(b"b")
            elif c == 79:
                out.append(b"O" + tok)
            elif c == 99:
                out.append(b"c%d" % (cas if status == "STORED" else 0))
        return b" ".join(out) + b"\r\n"

    # -- md ------------------------------------------------------------------------------

    def md(self, tokens: list[bytes], _data: object) -> bytes:
        """Answer ``md <key> <flags>*`` (``I``: mark stale instead of deleting)."""
        if len(tokens) < 2:
            return _ERROR
        opts, skey = self._common(tokens, _MD_FLAGS, _BAD_OR_DUP)
        if skey is None:
            return opts
        compare = None
        if 67 in opts:
            compare = parse_uint(opts[67])
            if compare < 0:
                return _BAD_OR_DUP
        store = self.store
        try:
            if 73 in opts:  # I
                ttl = parse_int(opts[84]) if 84 in opts else 0
                if ttl is None:
                    return _BAD_OR_DUP
                explicit = parse_uint(opts[69]) if 69 in opts else None  # E: the new CAS id
                if explicit is not None and explicit <= 0:
                    return _BAD_OR_DUP
                status, cas = store.store_item("append", skey, b"", compare_cas=compare,
                                               cas_id=explicit)
                if status == "STORED":
                    if 84 in opts:
                        store.touch(skey, ttl)
                    rec = self.ctx.lease(skey, cas)
                    rec[1], rec[2] = True, False
                    code = b"HD"
                else:
                    code = b"EX" if status == "EXISTS" else b"NF"
            else:
                code = {"DELETED": b"HD", "EXISTS": b"EX", "NOT_FOUND": b"NF"}[
                    store.delete_item(skey, compare_cas=compare)]
        except (ValueError, CachedepsError):
            return _BAD_FORMAT
        if code == b"HD" and 113 in opts:
            return b""
        out = [code]
        _echo(out, opts, tokens[1])
        return b" ".join(out) + b"\r\n"

    # -- ma ------------------------------------------------------------------------------

    def ma(self, tokens: list[bytes], _data: object) -> bytes:
        """Answer ``ma <key> <flags>*`` (increment or decrement, 64-bit unsigned)."""
        if len(tokens) < 2:
            return _ERROR
        opts, skey = self._common(tokens, _MA_FLAGS, _BAD_OR_DUP)
        if skey is None:
            return opts
        delta, initial, compare = 1, 0, None
        if 68 in opts:
            delta = parse_uint(opts[68])
        if 74 in opts:
            initial = parse_uint(opts[74])
        if 67 in opts:
            compare = parse_uint(opts[67])
        vivify = parse_int(opts[78]) if 78 in opts else 0
        ttl = parse_int(opts[84]) if 84 in opts else 0
        if delta < 0 or initial < 0 or (compare is not None and compare < 0) \
                or vivify is None or ttl is None:
            return _BAD_OR_DUP
        up = True
        if 77 in opts:
            mode = opts[77]
            if mode in (b"I", b"i", b"+"):
                up = True
            elif mode in (b"D", b"d", b"-"):
                up = False
            else:
                return b"CLIENT_ERROR invalid mode for ma M token\r\n"
        store = self.store
        try:
            if compare is not None:
                current = store.peek(skey)
                if current is None:
                    return self._ma_reply(b"NF", opts, tokens[1])
                if current[0] != compare:
                    return self._ma_reply(b"EX", opts, tokens[1])
            number = store.incr(skey, delta) if up else store.decr(skey, delta)
            if number is None:
                if 78 not in opts:
                    return self._ma_reply(b"NF", opts, tokens[1])
                status, _ = store.store_item("add", skey, b"%d" % initial, vivify)
                if status == "STORED":
                    number = initial
                else:
                    number = store.incr(skey, delta) if up else store.decr(skey, delta)
                    if number is None:
                        return self._ma_reply(b"NS", opts, tokens[1])
            elif 84 in opts:
                store.touch(skey, ttl)
        except (ValueError, CachedepsError) as exc:
            return _NON_NUMERIC if exc.__class__.__name__ == "NonNumericValue" else _BAD_FORMAT
        info = store.peek(skey) if (99 in opts or 116 in opts) else None
        if 113 in opts:
            return b""
        digits = b"%d" % number
        out = [b"VA %d" % len(digits) if 118 in opts else b"HD"]
        for c, tok in opts.items():
            if c == 99:
                out.append(b"c%d" % (info[0] if info else 0))
            elif c == 116:
                out.append(b"t%d" % (info[1] if info else -1))
            elif c == 107:
                out.append(b"k" + tokens[1])
            elif c == 79:
                out.append(b"O" + tok)
        if 118 in opts:
            return b" ".join(out) + b"\r\n" + digits + b"\r\n"
        return b" ".join(out) + b"\r\n"

    @staticmethod
    def _miss(opts: dict, key: bytes) -> bytes:
        out = [b"EN"]
        _echo(out, opts, key)
        return b" ".join(out) + b"\r\n" if len(out) > 1 else _EN

    @staticmethod
    def _ma_reply(code: bytes, opts: dict, key: bytes) -> bytes:
        out = [code]
        _echo(out, opts, key)
        return b" ".join(out) + b"\r\n"

    # -- me ------------------------------------------------------------------------------

    def me(self, tokens: list[bytes], _data: object) -> bytes:
        """Answer ``me <key> [b]`` with the item's metadata."""
        if len(tokens) < 2:
            return _BAD_FORMAT
        opts = {98: b""} if len(tokens) > 2 and tokens[2] == b"b" else {}
        skey = _key(tokens[1], opts)
        if isinstance(skey, bytes):
            return skey
        info = self.store.peek(skey)
        if info is None:
            return _EN
        from .admin import size_class

        cas, ttl, idle, fetched, size = info
        return b"ME %s exp=%d la=%d cas=%d fetch=%s cls=%d size=%d\r\n" % (
            tokens[1], ttl, idle, cas, b"yes" if fetched else b"no", size_class(size), size)
