"""``cachedeps serve`` answers as memcached does: the same bytes to both, the same replies."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import MemcachedProcess, memcached_available, require
from tests.server.conftest import ServeProcess, exchange

# Each block is sent on a fresh connection to both servers; the replies must be identical.
SESSION = [
    b"\r\n",
    b"set a 0 0 3\r\nabcd\r\nget a\r\n",
    b"set a 0 0 3\r\nab\r\n\r\nget a\r\n",
    b"set " + b"k" * 251 + b" 0 0 1\r\n"
    b"x\r\n",
    b"set a 0 0 -1\r\n",
    b"set a x 0 1\r\nx\r\n",
    b"set a 0 0 1 noreply\r\nx\r\nget a\r\n",
    b"incr a 1\r\nset n 0 0 1\r\n9\r\ndecr n 1\r\nget n\r\n"
    b"incr n 18446744073709551615\r\nincr n x\r\nincr n -1\r\nincr nope 1\r\n",
    b"delete a 0\r\ndelete a 1\r\ndelete a noreply\r\ndelete a 0 noreply\r\n"
    b"delete a\r\n",
    b"touch a 10\r\ntouch a x\r\nset n 0 0 1\r\n8\r\ngat 10 a n\r\ngats x a\r\ngat\r\n"
    b"gat 10\r\n",
    b"flush_all\r\nflush_all 0\r\nflush_all x\r\nflush_all noreply\r\n"
    b"flush_all 10 noreply\r\nflush_all 0\r\nverbosity\r\nverbosity 1\r\n"
    b"verbosity 1 noreply\r\nverbosity x\r\n",
    b"cache_memlimit 4\r\ncache_memlimit x\r\ncache_memlimit 64\r\nfoo\r\nGET a\r\n"
    b"mn\r\nmnx\r\nget\r\nset a\r\n",
    b"set a 5 0 2\r\nhi\r\nadd a 0 0 1\r\nx\r\nadd b 7 0 1\r\ny\r\nreplace c 0 0 1\r\n"
    b"z\r\nreplace a 9 0 2\r\nHI\r\nappend a 0 0 2\r\n!!\r\nprepend a 0 0 2\r\n<<\r\n"
    b"append zz 0 0 1\r\nx\r\nget a b c\r\ncas a 0 0 1 1\r\nx\r\ncas q 0 0 1 1\r\n"
    b"x\r\n",
    b"mg a v\r\nmg a\r\nmg nope v\r\nmg nope v q\r\nmn\r\nms a 2 T0 F5\r\nhi\r\n"
    b"mg a v f t s k Oabc\r\nmd a q\r\nmd a\r\nma a\r\nms n 1\r\n5\r\nma n\r\n"
    b"ma n MD D10 v\r\nma n N0 J13 v\r\n",
    b"ms a 2 Z\r\nhi\r\nmg\r\nmg a zz\r\nms a x\r\nhi\r\nms a 2 T0 F5 MX\r\nhi\r\n"
    b"mg " + b"k" * 251 + b" v\r\n"
    b"mg a b\r\n",
    b"flush_all\r\nmg lk N30 v t s f Oab k\r\nmg lk N30 v t\r\nmg lk v\r\n"
    b"ms lk 2 T60\r\nhi\r\nmg lk v\r\nmd lk I T30\r\nmg lk v t\r\nmg lk v t\r\n"
    b"mg lk v\r\n",
    b"ms x 1 I\r\n1\r\nmd x q\r\nmd x q\r\nmg x R30 v\r\nms x 1 T10\r\n1\r\n"
    b"mg x R30 v t\r\nmg x R30 v t\r\nmg x h l t\r\nmg x h l t\r\nma x q\r\n"
    b"ma x t v N0\r\nma x MI D5 v\r\nma y N0 J5 v\r\nma y MX\r\nma y Dx\r\n",
    b"ms a 2 MA\r\nxx\r\nms nx 2 MA\r\nxx\r\nms nx 2 MR q\r\nxx\r\nms a 2 ME q\r\n"
    b"xx\r\nms a 2 q\r\nxx\r\nms a 2 F1 T0 MS k O1\r\nzz\r\nms a bad\r\nmg a s v f\r\n"
    b"mg a O1234567890123456789012345678901234567890 v\r\n",
    b"set a 0 0 1\r\n1\r\nmg a q\r\nmg a q v\r\nmg a k q\r\nmg a s q\r\nma zz q\r\n"
    b"md zz I\r\nmg a Nx\r\nmg a TTx\r\nmg a O1 O2\r\nms a 1 F-1\r\n1\r\nms a 1 Tx\r\n"
    b"1\r\nms a 1 Cx\r\n1\r\nmd a Cx\r\nma a q D\r\nma a O5 k t\r\n",
    b"set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\nget a b a zz b\r\ngets\r\n"
    b"incr a 18446744073709551615\r\nincr a 1\r\ndecr a 5\r\n"
    b"incr a 18446744073709551616\r\n",
    b"set a 0 0 1\r\n1\r\ntouch a 100 noreply\r\ntouch a 100\r\n"
    b"set c 4294967295 -1 1\r\nx\r\nget c\r\nset c 4294967295 0 1\r\nx\r\nget c\r\n"
    b"prepend c 0 0 1 noreply\r\ny\r\nget c\r\ndelete c noreply\r\nget c\r\n"
    b"incr c 1 noreply\r\n",
    b"lru_crawler foo\r\nstats nonsense\r\nset x 0 0 5 noreply\r\nabc\r\n\r\n",    b"ms a 2\r\nabc\r\nmg a v\r\n",
    b"ms a 2 q\r\nab\r\nms a 2 MA q\r\ncd\r\nmg a v\r\nms a 2 MP\r\nzz\r\n"
    b"mg a v s\r\n",
    b"ms a 2 T-1\r\nab\r\nmg a v\r\nms a 2 F4294967297\r\nab\r\nmg a f v\r\n"
    b"set z 4294967296 0 1\r\nx\r\nget z\r\n",
    b"set c 0 0 2\r\n10\r\nma c D5 v\r\nma c MD D20 v\r\nma c MD v q\r\nma c v q\r\n"
    b"ma c q\r\nma c v\r\n",
    b"ms d 1\r\nx\r\nma d\r\nma d v\r\nmd d\r\nmd d\r\nmd d q\r\nmd d k O9\r\n"
    b"mg d k O9\r\nmg d k O9 q\r\nmn\r\n",
    b"get a b\r\ngat 0 a\r\ngats 0\r\ntouch\r\ntouch a\r\nincr\r\nincr a\r\n"
    b"decr a 1 2 3\r\ndelete\r\ndelete a b c d\r\n",
    b"set e 0 0 1\r\n5\r\nset e 0 0 1 noreply extra\r\n5\r\ncas e 0 0 1\r\n5\r\n"
    b"append e 0 0 1 1 noreply\r\nx\r\nget e\r\n",
    b"set f 0 0 0\r\n\r\nget f\r\nappend f 0 0 0\r\n\r\nget f\r\nincr f 1\r\n",
    b"mg\r\nms\r\nmd\r\nma\r\nme\r\nmn x\r\nmgx a\r\n",
    b"set k 0 2592001 1\r\nx\r\nget k\r\nset k 0 -5 1\r\nx\r\nget k\r\n",
    b"mg bm9wZQ== k O1 b\r\nma nope k O1\r\nma nope q\r\nmd nope q k\r\n"
    b"mg Zm9v b k O1\r\nms Zm9v 1 b k O2 q\r\nx\r\nms Zm9v 1 b O3 k\r\nx\r\n"
    b"mg Zm9v b O4 k\r\n",
    b"ms hh 1 T100\r\nx\r\nmg hh h l t\r\nmg hh h l t v\r\n",
    # values over the item limit are refused and swallowed; a failed set removes the old value
    b"set big 0 0 1\r\n1\r\nset big 0 0 1048577\r\n" + b"y" * 1048577 + b"\r\nget big\r\n",
    b"get a " + b"k" * 251 + b"\r\n",
    b"stats nonsense\r\nverbosity\r\n",
]


@pytest.fixture(scope="module")
def pair():
    require(memcached_available(), "memcached is not installed (apt-get install memcached)")
    memcached = MemcachedProcess().start()
    serve = ServeProcess().start()
    yield memcached, serve
    memcached.stop()
    serve.stop()


@pytest.mark.parametrize("block", SESSION, ids=[str(i) for i in range(len(SESSION))])
def test_replies_match_memcached_byte_for_byte(pair, block):
    memcached, serve = pair
    assert exchange(serve.port, block) == exchange(memcached.port, block)


def test_quit_closes_like_memcached(pair):
    memcached, serve = pair
    block = b"set q 0 0 1\r\n1\r\nquit\r\nget q\r\n"
    assert exchange(serve.port, block, expect_close=True) == exchange(memcached.port, block, expect_close=True)
    assert exchange(serve.port, block, expect_close=True) == b"STORED\r\n"


@pytest.mark.parametrize("protocol", ["-a", "-b"])
def test_memccapable_passes_every_test(serve_factory, protocol):
    binary = shutil.which("memccapable")
    require(binary is not None, "memccapable is not installed (apt-get install libmemcached-tools)")
    serve = serve_factory()
    result = subprocess.run([binary, protocol, "-h", "127.0.0.1", "-p", str(serve.port), "-t", "5"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All tests passed" in result.stdout
    assert "[fail]" not in result.stdout
