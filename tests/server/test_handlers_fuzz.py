"""Every command handler, fed arbitrary command streams, answers instead of raising."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachedeps.server.context import ServerSettings
from cachedeps.server.protocol import OP_CLOSE, OP_REPLY, TextParser
from cachedeps.server.server import Server
from cachedeps.store.embedded import EmbeddedStore

_WORDS = st.sampled_from([
    b"get", b"gets", b"gat", b"gats", b"set", b"add", b"cas", b"append", b"incr", b"decr",
    b"touch", b"delete", b"flush_all", b"verbosity", b"cache_memlimit", b"stats", b"version",
    b"mg", b"ms", b"md", b"ma", b"mn", b"me", b"lru_crawler", b"metadump", b"all", b"items",
    b"slabs", b"sizes", b"prefixes", b"settings", b"cachedump", b"cd_link", b"cd_invalidate",
    b"cd_dependents", b"k", b"k:1", b"Zm9v", b"0", b"1", b"-1", b"5", b"18446744073709551616",
    b"noreply", b"v", b"q", b"k", b"c", b"t", b"s", b"f", b"h", b"l", b"u", b"b", b"I", b"N30",
    b"R5", b"T0", b"T-1", b"C1", b"E7", b"F3", b"MA", b"MP", b"ME", b"MR", b"MD", b"M+", b"D3",
    b"J9", b"Oop", b"O" + b"x" * 40, b"\xff\xfe", b"k" * 251, b"Tx", b"Nx",
])
_LINE = st.lists(_WORDS, min_size=1, max_size=8).map(lambda ws: b" ".join(ws) + b"\r\n")
_BLOCK = st.sampled_from([b"5\r\n", b"abc\r\n", b"\r\n", b"xx", b"12345\r\n"])


@pytest.fixture(scope="module")
def server():
    store = EmbeddedStore("fuzz", max_memory=8 * 2**20, item_max=4096, background=False)
    srv = Server(ServerSettings(port=0, max_memory=8 * 2**20, item_max=4096), store=store)
    yield srv
    store.close()


@settings(max_examples=400, deadline=None)
@given(stream=st.lists(st.one_of(_LINE, _BLOCK), max_size=25))
def test_handlers_never_raise(server, stream):
    parser = TextParser(item_max=4096)
    for op, args, payload in parser.feed(b"".join(stream)):
        if op in (OP_REPLY, OP_CLOSE):
            continue
        handler = server.handlers.get(op)
        if handler is None:
            continue
        reply = handler(args, payload)
        assert reply is None or isinstance(reply, bytes)
        if reply:
            assert reply.endswith(b"\r\n") or reply.endswith(b"\n")
