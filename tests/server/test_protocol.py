"""The text/meta parser on canned bytes: whole, and fed one byte at a time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachedeps.server.protocol import OP_CLOSE, OP_REPLY, OP_TOO_LARGE, TextParser


def parse_all(data: bytes, **kw) -> list[tuple]:
    return TextParser(**kw).feed(data)


def parse_bytewise(data: bytes, **kw) -> list[tuple]:
    parser = TextParser(**kw)
    out: list[tuple] = []
    for i in range(len(data)):
        out += parser.feed(data[i:i + 1])
    return out


SESSION = (
    b"get a b c\r\n"
    b"set k 5 0 3\r\nabc\r\n"
    b"cas k 1 100 2 77 noreply\r\nxy\r\n"
    b"ms m 4 T10 F3\r\nwxyz\r\n"
    b"mg m v k\n"
    b"\r\n"
    b"set big 0 0 20\r\n" + b"z" * 20 + b"\r\n"
    b"set bad 0 0 2\r\nabc\r\n"
    b"incr n 5\r\n"
)

EXPECTED = [
    (b"get", [b"get", b"a", b"b", b"c"], None),
    (b"set", (b"k", 5, 0, 0, False), b"abc"),
    (b"cas", (b"k", 1, 100, 77, True), b"xy"),
    (b"ms", [b"ms", b"m", b"4", b"T10", b"F3"], b"wxyz"),
    (b"mg", [b"mg", b"m", b"v", b"k"], None),
    (OP_REPLY, False, b"ERROR\r\n"),
    (OP_TOO_LARGE, (b"big", 0, 0, 0, False), b"set"),
    # "abc\r" is the block: bad chunk, then "\n" is an empty line
    (OP_REPLY, False, b"CLIENT_ERROR bad data chunk\r\n"),
    (OP_REPLY, False, b"ERROR\r\n"),
    (b"incr", [b"incr", b"n", b"5"], None),
]


@pytest.mark.parametrize("parse", [parse_all, parse_bytewise])
def test_session_parses_the_same_whole_and_byte_by_byte(parse):
    assert parse(SESSION, item_max=80) == EXPECTED  # "big" is 59 + 3 + 20 = 82 bytes


@pytest.mark.parametrize("line, reply", [
    (b"set k 0 0\r\n", b"ERROR\r\n"),
    (b"set k x 0 1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"set k 0 x 1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"set k 0 0 -1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"set k 18446744073709551616 0 1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"set " + b"k" * 251 + b" 0 0 1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"cas k 0 0 1 x\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"ms k x\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"ms k\r\n", b"CLIENT_ERROR bad command line format\r\n"),
])
def test_bad_storage_lines_are_answered_without_reading_a_block(line, reply):
    out = parse_all(line + b"get a\r\n")
    assert out[0][0] == OP_REPLY and out[0][2] == reply
    assert out[1][0] == b"get"


def test_too_large_value_is_swallowed_across_reads():
    parser = TextParser(item_max=4)
    assert parser.feed(b"set k 0 0 10 noreply\r\n01234") == [(OP_TOO_LARGE, (b"k", 0, 0, 0, True), b"set")]
    assert parser.feed(b"56789\r") == []
    assert parser.feed(b"\nget k\r\n") == [(b"get", [b"get", b"k"], None)]


def test_long_lines_close_the_connection_but_long_multigets_do_not():
    parser = TextParser(line_max=64, multiget_max=1000)
    assert parser.feed(b"x" * 65) == [(OP_CLOSE, b"command line too long", None)]
    parser = TextParser(line_max=64, multiget_max=1000)
    keys = b" ".join(b"key%d" % i for i in range(50))
    assert parser.feed(b"get " + keys) == []
    assert parser.feed(b"\r\n")[0][1][1:] == keys.split()
    parser = TextParser(line_max=64, multiget_max=100)
    assert parser.feed(b"get " + keys)[0][0] == OP_CLOSE


def test_buffering_is_bounded_by_the_data_block():
    parser = TextParser(item_max=200)
    parser.feed(b"set k 0 0 100\r\n" + b"x" * 50)
    assert parser.buffered == 50
    assert parser.feed(b"x" * 50 + b"\r\n")[0][2] == b"x" * 100
    assert parser.buffered == 0


_PIECES = st.sampled_from([
    b"get ", b"gets ", b"set ", b"ms ", b"cas ", b"k ", b"0 ", b"1 ", b"-1 ", b"99999999999 ",
    b"\r\n", b"\n", b"\r", b" ", b"noreply", b"mg k v", b"x", b"\x00", b"\xff", b"T5 ", b"ab\r\n",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_PIECES, st.binary(max_size=40)), max_size=30), st.integers(1, 17))
def test_fuzz_parser_only_yields_commands_and_never_hangs(pieces, step):
    data = b"".join(pieces)
    parser = TextParser(item_max=64, line_max=128, multiget_max=256)
    out: list[tuple] = []
    for i in range(0, len(data), step):
        out += parser.feed(data[i:i + step])
    for op, args, payload in out:
        assert isinstance(op, bytes) and op
        if op == OP_REPLY:
            assert payload.endswith(b"\r\n")
    assert parser.buffered <= len(data)
    # the same stream parsed in one piece yields the same commands, unless it closed early
    whole = TextParser(item_max=64, line_max=128, multiget_max=256).feed(data)
    if not any(c[0] == OP_CLOSE for c in whole + out):
        assert whole == out
