"""The memcache binary protocol, for clients that still speak it.

A connection speaks it when its first byte is ``0x80`` (the request magic). Supported:
get/getq/getk/getkq, set/add/replace (and quiet forms, with CAS), delete, incr/decr,
quit, flush, noop, version, append/prepend, stat, touch, gat/gatq/gatk/gatkq.
"""

from __future__ import annotations

import struct

from ..errors import CachedepsError, ValueTooLarge
from .context import VERSION_STRING, ServerContext, decode_key

__all__ = ["BinaryConnection", "parse_packets"]

_HEADER = struct.Struct(">BBHBBHIIQ")
_REQ_MAGIC = 0x80
_RES_MAGIC = 0x81
_U64 = struct.Struct(">Q")
_FLAGS = struct.Struct(">I")
_STORE_EXTRAS = struct.Struct(">II")
_COUNTER_EXTRAS = struct.Struct(">QQI")

OK, NOT_FOUND, EXISTS, TOO_LARGE, INVALID, NOT_STORED, NON_NUMERIC = 0, 1, 2, 3, 4, 5, 6
UNKNOWN = 0x81

# opcode -> (name, quiet)
_OPS = {
    0x00: ("get", False), 0x09: ("get", True), 0x0C: ("getk", False), 0x0D: ("getk", True),
    0x01: ("set", False), 0x11: ("set", True), 0x02: ("add", False), 0x12: ("add", True),
    0x03: ("replace", False), 0x13: ("replace", True), 0x04: ("delete", False),
    0x14: ("delete", True), 0x05: ("incr", False), 0x15: ("incr", True),
    0x06: ("decr", False), 0x16: ("decr", True), 0x07: ("quit", False), 0x17: ("quit", True),
    0x08: ("flush", False), 0x18: ("flush", True), 0x0A: ("noop", False),
    0x0B: ("version", False), 0x0E: ("append", False), 0x19: ("append", True),
    0x0F: ("prepend", False), 0x1A: ("prepend", True), 0x10: ("stat", False),
    0x1C: ("touch", False), 0x1D: ("gat", False), 0x1E: ("gat", True),
    0x23: ("gatk", False), 0x24: ("gatk", True),
}
_MESSAGES = {NOT_FOUND: b"Not found", EXISTS: b"Data exists for key.", TOO_LARGE: b"Too large.",
             INVALID: b"Invalid arguments", NOT_STORED: b"Not stored.",
             NON_NUMERIC: b"Non-numeric server-side value for incr or decr",
             UNKNOWN: b"Unknown command"}


#: one request: ``(opcode, key, extras, value, opaque, cas)``
_Packet = tuple[int, bytes, bytes, bytes, int, int]


def parse_packets(buf: bytes, max_body: int) -> tuple[list[_Packet], int, str | None]:
    """Split ``buf`` into whole request packets.

    Returns ``(packets, consumed, error)``: each packet is ``(opcode, key, extras, value,
    opaque, cas)``; ``error`` is ``"magic"`` for a byte stream that is not binary requests,
    ``"size"`` for a body over ``max_body`` (its header is at ``consumed``) or ``"header"``
    for a whole packet whose key and extras do not fit its body (at ``consumed``).
    """
    packets: list[_Packet] = []
    pos = 0
    end = len(buf)
    while end - pos >= 24:
        magic, opcode, keylen, extlen, _, _, bodylen, opaque, cas = _HEADER.unpack_from(buf, pos)
        if magic != _REQ_MAGIC:
            return packets, pos, "magic"
        if bodylen > max_body:
            return packets, pos, "size"
        if keylen + extlen > bodylen:
            # memcached reads the key and extras the header announces, then answers
            # "Unknown command" and closes
            if end - pos - 24 < keylen + extlen:
                break
            return packets, pos, "header"
        if end - pos - 24 < bodylen:
            break
        body = pos + 24
        extras = buf[body:body + extlen]
        key = buf[body + extlen:body + extlen + keylen]
        value = buf[body + extlen + keylen:body + bodylen]
        packets.append((opcode, key, extras, value, opaque, cas))
        pos = body + bodylen
    return packets, pos, None


def _response(opcode: int, status: int, opaque: int, cas: int = 0, key: bytes = b"",
              extras: bytes = b"", value: bytes = b"") -> bytes:
    body = len(key) + len(extras) + len(value)
    return _HEADER.pack(_RES_MAGIC, opcode, len(key), len(extras), 0, status, body, opaque,
                        cas) + extras + key + value


class BinaryConnection:
    """The binary-protocol state of one connection: buffer in, replies out."""

    def __init__(self, ctx: ServerContext, text_handlers: dict) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self._admin_stats = text_handlers.get(b"stats")
        self._rest = b""
        self._queue: list[tuple] = []
        self._error_after: bytes | None = None
        # a too-large body being skipped: bytes left, then the reply that follows it
        self._swallow = 0
        self._swallow_reply = b""
        self._close_after = False
        self.max_body = ctx.settings.item_max + 1024
        self.batch_bytes = ctx.settings.write_high_water

    @property
    def pending(self) -> bool:
        """Return whether parsed requests wait to be answered (replies were held back)."""
        return bool(self._queue)

    def feed(self, data: bytes) -> tuple[list[bytes], bool]:
        """Take bytes; return ``(replies, close)``.

        Replies stop after about ``batch_bytes``; the requests left wait in a queue
        (:attr:`pending`) for the next call, which the connection makes once the client
        has read enough.
        """
        early: list[bytes] = []
        if data and self._swallow:
            if len(data) < self._swallow:
                self._swallow -= len(data)
                data = b""
            else:
                data = data[self._swallow:]
                self._swallow = 0
                early.append(self._swallow_reply)
                self._swallow_reply = b""
        while data:
            buf = self._rest + data if self._rest else data
            data = b""
            packets, used, error = parse_packets(buf, self.max_body)
            self._rest = buf[used:]
            self._queue.extend(packets)
            if error == "size" and len(buf) >= used + 24:
                # As memcached: the body is skipped, then "Too large" is answered (and a
                # failed set leaves no old value); the connection goes on.
                header = _HEADER.unpack_from(buf, used)
                opcode, keylen, extlen, bodylen, opaque = header[1], header[2], header[3], header[6], header[7]
                reply = _response(opcode, TOO_LARGE, opaque, value=_MESSAGES[TOO_LARGE])
                if opcode in (0x01, 0x11) and 0 < keylen <= 250 and len(buf) >= used + 24 + extlen + keylen:
                    key = buf[used + 24 + extlen:used + 24 + extlen + keylen]
                    self._queue.append((-1, key, b"", b"", 0, 0))  # drop the old value, in order
                rest = len(buf) - used - 24
                self._rest = b""
                if rest >= bodylen:
                    self._queue.append((-2, b"", b"", reply, 0, 0))
                    data = buf[used + 24 + bodylen:]
                else:
                    self._swallow = bodylen - rest
                    self._swallow_reply = reply
            elif error == "header":
                opcode, opaque = buf[used + 1], _HEADER.unpack_from(buf, used)[7]
                self._error_after = _response(opcode, UNKNOWN, opaque, value=_MESSAGES[UNKNOWN])
                self._rest = b""
            elif error is not None:
                self._error_after = b""
            elif len(self._rest) > self.max_body + 24:
                self._error_after = b""
        out: list[bytes] = early
        size = 0
        queue = self._queue
        done = 0
        for packet in queue:
            done += 1
            if packet[0] in (0x07, 0x17):  # quit: answer (unless quiet), then close
                if packet[0] == 0x07:
                    out.append(_response(0x07, OK, packet[4]))
                self._queue = []
                return out, True
            if packet[0] < 0:
                if packet[0] == -1:
                    try:
                        self.store.delete(decode_key(packet[1]))
                    except (ValueError, CachedepsError):
                        pass
                else:
                    out.append(packet[3])
                continue
            try:
                reply = self._execute(*packet)
            except Exception:  # keep serving; the error is answered, not raised
                reply = _response(packet[0], INVALID, packet[4], value=b"Internal error")
            if reply:
                out.append(reply)
                size += len(reply)
            if self._close_after:
                # memcached closes after answering a malformed request
                self._queue = []
                return out, True
            if size > self.batch_bytes:
                break
        del queue[:done]
        if not queue and self._error_after is not None:
            if self._error_after:
                out.append(self._error_after)
            return out, True
        return out, False

    def _error(self, opcode: int, status: int, opaque: int) -> bytes:
        return _response(opcode, status, opaque, value=_MESSAGES.get(status, b"Error"))

    def _malformed(self, opcode: int, opaque: int) -> bytes:
        """Answer a request whose key or extras do not fit its command; then close."""
        self._close_after = True
        return _response(opcode, INVALID, opaque, value=_MESSAGES[INVALID])

    def _execute(self, opcode, key, extras, value, opaque, cas):
        spec = _OPS.get(opcode)
        if spec is None:
            return self._error(opcode, UNKNOWN, opaque)
        name, quiet = spec
        store = self.store
        if name in ("noop", "version", "quit", "flush", "stat"):
            return self._server_op(name, quiet, opcode, key, extras, opaque)
        if not key or len(key) > 250:
            return self._malformed(opcode, opaque)
        skey = decode_key(key)
        try:
            if name in ("get", "getk", "gat", "gatk"):
                if name.startswith("gat"):
                    if len(extras) != 4:
                        return self._malformed(opcode, opaque)
                    item = store.gat(skey, _signed(_FLAGS.unpack(extras)[0]))
                else:
                    if extras:
                        return self._malformed(opcode, opaque)
                    item = store.get_item(skey)
                if item is None:
                    if quiet:
                        return b""
                    return _response(opcode, NOT_FOUND, opaque, key=key if name.endswith("k") else b"",
                                     value=b"" if name.endswith("k") else _MESSAGES[NOT_FOUND])
                return _response(opcode, OK, opaque, item[2], key if name.endswith("k") else b"",
                                 _FLAGS.pack(item[1]), item[0])
            if name in ("set", "add", "replace", "append", "prepend"):
                if name in ("append", "prepend"):
                    flags = expire = 0
                elif len(extras) != 8:
                    return self._malformed(opcode, opaque)
                else:
                    flags, expire = _STORE_EXTRAS.unpack(extras)
                    expire = _signed(expire)
                status, new_cas = store.store_item(name, skey, value, expire, flags,
                                                   compare_cas=cas or None)
                code = {"STORED": OK, "NOT_STORED": NOT_STORED if name != "add" else EXISTS,
                        "EXISTS": EXISTS, "NOT_FOUND": NOT_FOUND}[status]
                if code == NOT_STORED and name in ("replace", "append", "prepend"):
                    code = NOT_FOUND if name == "replace" else NOT_STORED
                if code == OK:
                    return b"" if quiet else _response(opcode, OK, opaque, new_cas)
                return self._error(opcode, code, opaque)
            if name == "delete":
                status = store.delete_item(skey, compare_cas=cas or None)
                if status == "DELETED":
                    return b"" if quiet else _response(opcode, OK, opaque)
                return self._error(opcode, EXISTS if status == "EXISTS" else NOT_FOUND, opaque)
            if name in ("incr", "decr"):
                if len(extras) != 20:
                    return self._malformed(opcode, opaque)
                delta, initial, expire = _COUNTER_EXTRAS.unpack(extras)
                number = store.incr(skey, delta) if name == "incr" else store.decr(skey, delta)
                if number is None:
                    if expire == 0xFFFFFFFF:
                        return self._error(opcode, NOT_FOUND, opaque)
                    store.store_item("add", skey, b"%d" % initial, _signed(expire))
                    number = initial
                if quiet:
                    return b""
                info = store.gets(skey)
                return _response(opcode, OK, opaque, info[1] if info else 0, value=_U64.pack(number))
            if name == "touch":
                if len(extras) != 4:
                    return self._malformed(opcode, opaque)
                if store.touch(skey, _signed(_FLAGS.unpack(extras)[0])):
                    return _response(opcode, OK, opaque)
                return self._error(opcode, NOT_FOUND, opaque)
        except ValueTooLarge:
            if name == "set":
                # As memcached (and the text set): a failed set leaves no old value readable.
                store.delete(skey)
            return self._error(opcode, TOO_LARGE, opaque)
        except (ValueError, CachedepsError) as exc:
            if exc.__class__.__name__ == "NonNumericValue":
                return self._error(opcode, NON_NUMERIC, opaque)
            return self._error(opcode, INVALID, opaque)
        return self._error(opcode, UNKNOWN, opaque)

    def _server_op(self, name, quiet, opcode, key, extras, opaque):
        if name == "noop":
            return _response(opcode, OK, opaque)
        if name == "version":
            return _response(opcode, OK, opaque, value=VERSION_STRING.encode())
        if name == "flush":
            if not self.ctx.settings.flush_enabled:  # memcached -F answers "Auth failure."
                return _response(opcode, 0x20, opaque, value=b"Auth failure.")
            delay = _FLAGS.unpack(extras)[0] if len(extras) == 4 else 0
            self.store.flush_all(delay)
            self.ctx.leases.clear()
            return b"" if quiet else _response(opcode, OK, opaque)
        # stat: one packet per figure, then an empty one
        tokens = [b"stats"] + ([key] if key else [])
        text = self._admin_stats(tokens, None) if self._admin_stats else b"END\r\n"
        if not text.startswith(b"STAT") and text != b"END\r\n":
            return self._error(opcode, NOT_FOUND, opaque)
        out = []
        for line in text.split(b"\r\n"):
            if line.startswith(b"STAT "):
                _, name_, val = (line.split(b" ", 2) + [b""])[:3]
                out.append(_response(opcode, OK, opaque, key=name_, value=val))
        out.append(_response(opcode, OK, opaque))
        return b"".join(out)


def _signed(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value
