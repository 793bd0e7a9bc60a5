"""The Redis store's wire details: the item layout, memcached expiry in Redis terms, the Lua
scripts, and cluster slots (which key lands where, and a hash tag for every slot).

Every script touches the keys it is given in ``KEYS``, except :data:`PURGE` (one server
only), which follows the dependents it pops.
"""

from __future__ import annotations

import binascii
import math
import random
import threading
import time

from ..api import RELATIVE_EXPIRY_LIMIT, Item
from ..errors import ProtocolError

__all__ = ["HEADER", "CAS", "CONCAT", "LINK", "PURGE", "PURGE_SLOT", "new_cas", "pack", "unpack",
           "check_flags", "expiry", "slot", "slot_tags"]

HEADER = 12

CAS = """
local v = redis.call('GET', KEYS[1])
if not v then return -1 end
if string.sub(v, 5, 12) ~= ARGV[1] then return 0 end
local mode = ARGV[3]
if mode == 'del' then redis.call('DEL', KEYS[1])
elseif mode == 'keep' then redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
elseif mode == 'px' then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
elseif mode == 'pxat' then redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[4])
else redis.call('SET', KEYS[1], ARGV[2]) end
return 1
"""

CONCAT = """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if #v + #ARGV[1] > tonumber(ARGV[4]) then return -1 end
local body = string.sub(v, 13)
if ARGV[3] == 'a' then body = body .. ARGV[1] else body = ARGV[1] .. body end
redis.call('SET', KEYS[1], string.sub(v, 1, 4) .. ARGV[2] .. body, 'KEEPTTL')
return 1
"""

# Link ARGV[3..] under the set KEYS[1]; ARGV[1]: the expiry in ms (0: none); ARGV[2]: the most
# members the set keeps (0: no bound), extra ones popped at random (their purge is lost: the
# feed's validation refuses those entries instead).
LINK = """
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SADD', KEYS[1], unpack(ARGV, 3))
local cap = tonumber(ARGV[2])
if cap > 0 then
  local n = redis.call('SCARD', KEYS[1])
  if n > cap then redis.call('SPOP', KEYS[1], n - cap) end
end
local ms = tonumber(ARGV[1])
if ms == 0 then redis.call('PERSIST', KEYS[1])
elseif existed == 0 then redis.call('PEXPIRE', KEYS[1], ms)
else redis.call('PEXPIRE', KEYS[1], ms, 'GT') end
return 1
"""

# One server: delete KEYS and, depth first, their dependents, popping at most ARGV[1]
# dependents in all; return {deleted, keys whose sets still hold dependents}.
PURGE = """
local budget = tonumber(ARGV[1])
local stack = {}
for i = 1, #KEYS do stack[#stack + 1] = KEYS[i] end
local seen = {}
local left = {}
local deleted = 0
while #stack > 0 do
  local k = table.remove(stack)
  if not seen[k] then
    seen[k] = true
    deleted = deleted + redis.call('DEL', k)
    local s = '\\1' .. k
    local full = true
    if budget > 0 then
      local kids = redis.call('SPOP', s, budget)
      full = #kids == budget  -- fewer than asked for: the set is gone
      budget = budget - #kids
      for i = 1, #kids do stack[#stack + 1] = kids[i] end
    end
    if full and redis.call('EXISTS', s) == 1 then left[#left + 1] = k end
  end
end
return {deleted, left}
"""

# A cluster: KEYS are pairs (item, its set) of one slot; delete the items, pop at most
# ARGV[1] dependents; return {deleted, dependents, items whose sets are not empty yet}.
PURGE_SLOT = """
local budget = tonumber(ARGV[1])
local kids = {}
local left = {}
local deleted = 0
for i = 1, #KEYS, 2 do
  deleted = deleted + redis.call('DEL', KEYS[i])
  local full = true
  if budget > 0 then
    local got = redis.call('SPOP', KEYS[i + 1], budget)
    full = #got == budget
    budget = budget - #got
    for j = 1, #got do kids[#kids + 1] = got[j] end
  end
  if full and redis.call('EXISTS', KEYS[i + 1]) == 1 then left[#left + 1] = KEYS[i] end
end
return {deleted, kids, left}
"""


def new_cas() -> int:
    return random.getrandbits(63) | 1


def pack(value: bytes, flags: int, cas: int) -> bytes:
    return flags.to_bytes(4, "big") + cas.to_bytes(8, "big") + value


def unpack(raw: bytes, key: str) -> Item:
    if len(raw) < HEADER:
        raise ProtocolError(f"Redis item {key!r} has no cachedeps header ({len(raw)} bytes): "
                            "another client wrote this key; use a database of its own (redis://host/N)")
    return Item(raw[HEADER:], int.from_bytes(raw[:4], "big"), int.from_bytes(raw[4:12], "big"))


def check_flags(flags: int) -> int:
    if not (isinstance(flags, int) and 0 <= flags <= 2**32 - 1):
        raise ValueError(f"flags must be an int from 0 to 2**32-1, got {flags!r}")
    return flags


def expiry(expire: float) -> tuple[str, int]:
    """Memcached's expiry as ``(mode, milliseconds)``: ``("", 0)`` never, ``("px", ms)``
    relative, ``("pxat", unix ms)`` absolute, ``("del", 0)`` already expired."""
    if expire == 0:
        return "", 0
    if expire < 0:
        return "del", 0
    if expire <= RELATIVE_EXPIRY_LIMIT:
        return "px", max(1, int(math.ceil(expire * 1000)))
    at = int(expire * 1000)
    if at <= time.time() * 1000:
        return "del", 0
    return "pxat", at


def slot(key: bytes) -> int:
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return binascii.crc_hqx(key, 0) % 16384


_TAGS: list[str] = []
_TAGS_LOCK = threading.Lock()


def slot_tags() -> list[str]:
    """Return, for each of the 16,384 cluster slots, a short string that hashes to it."""
    if not _TAGS:
        with _TAGS_LOCK:
            if not _TAGS:
                table: list[str | None] = [None] * 16384
                missing, i = 16384, 0
                while missing:
                    text = format(i, "x")
                    slot = binascii.crc_hqx(text.encode(), 0) % 16384
                    if table[slot] is None:
                        table[slot] = text
                        missing -= 1
                    i += 1
                _TAGS.extend(t for t in table if t is not None)
    return _TAGS
