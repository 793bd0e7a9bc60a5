"""The store conformance tests: the memcache command set as every store must carry it out."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from ..api import Store
from ..errors import BackendUnavailable, InvalidKey, NonNumericValue, ValueTooLarge

__all__ = ["StoreConformance"]

_U64 = 2**64


class StoreConformance:
    """Tests of the :class:`~cachedeps.api.Store` contract; subclass and provide ``store``."""

    #: an expiry short enough to wait for, and how long to wait for it to pass
    short_expire: float = 1
    expire_wait: float = 2.1
    #: a value size every store must accept (memcached's default item limit is 1 MiB)
    large_value: int = 1024 * 1024 - 2048
    #: a value size every store must refuse
    too_large_value: int = 1024 * 1024 + 1

    @pytest.fixture
    def store(self) -> Store:
        """Return the store under test, empty; subclasses must override this fixture."""
        raise NotImplementedError("Subclasses of StoreConformance provide a `store` fixture")

    @pytest.fixture
    def small_store(self) -> Store:
        """Return an empty store holding at most a few MiB (override to test eviction)."""
        pytest.skip("this backend provides no small_store fixture")

    @pytest.fixture
    def dead_store(self) -> Store:
        """Return a store whose server is down (override for networked stores)."""
        pytest.skip("this backend has no server to be down")

    # -- basic reads and writes ----------------------------------------------------------

    def test_set_get_round_trip(self, store: Store) -> None:
        assert store.get("conf:missing") is None
        store.set("conf:a", b"alpha")
        store.set("conf:empty", b"")
        store.set("conf:binary", bytes(range(256)) + b"\r\nEND\r\n")
        assert store.get("conf:a") == b"alpha"
        assert store.get("conf:empty") == b""
        assert store.get("conf:binary") == bytes(range(256)) + b"\r\nEND\r\n"
        store.set("conf:a", b"beta")
        assert store.get("conf:a") == b"beta"

    def test_unicode_key(self, store: Store) -> None:
        store.set("conf:ключ", b"v")
        assert store.get("conf:ключ") == b"v"
        assert store.get_many(["conf:ключ"]) == {"conf:ключ": b"v"}

    def test_get_many_and_items(self, store: Store) -> None:
        keys = [f"conf:many:{i}" for i in range(200)]
        assert store.set_many({k: k.encode() for k in keys[::2]}) == []
        got = store.get_many(keys)
        assert got == {k: k.encode() for k in keys[::2]}
        items = store.gets_many(keys[:4])
        assert set(items) == {keys[0], keys[2]}
        assert items[keys[0]][0] == keys[0].encode()
        assert store.get_many([]) == {}

    def test_flags_round_trip(self, store: Store) -> None:
        for flags in (0, 1, 0x7FFFFFFF, 2**32 - 1):
            store.set("conf:flags", b"v", flags=flags)
            item = store.get_item("conf:flags")
            assert item is not None and item.flags == flags and item.value == b"v"
        assert store.get_item("conf:nothing") is None

    def test_add_and_replace(self, store: Store) -> None:
        assert store.replace("conf:r", b"x") is False
        assert store.get("conf:r") is None
        assert store.add("conf:r", b"first") is True
        assert store.add("conf:r", b"second") is False
        assert store.get("conf:r") == b"first"
        assert store.replace("conf:r", b"third", flags=5) is True
        item = store.get_item("conf:r")
        assert item is not None and item[:2] == (b"third", 5)

    def test_cas(self, store: Store) -> None:
        assert store.cas("conf:c", b"v", 12345) is None
        assert store.gets("conf:c") is None
        store.set("conf:c", b"one")
        got = store.gets("conf:c")
        assert got is not None
        value, token = got
        assert value == b"one"
        assert store.cas("conf:c", b"two", token) is True
        assert store.get("conf:c") == b"two"
        assert store.cas("conf:c", b"three", token) is False
        assert store.get("conf:c") == b"two"
        got = store.gets("conf:c")
        assert got is not None
        _, token2 = got
        assert token2 != token
        store.set("conf:c", b"four")
        assert store.cas("conf:c", b"five", token2) is False
        item, got = store.get_item("conf:c"), store.gets("conf:c")
        assert item is not None and got is not None and item.cas == got[1]

    def test_append_prepend(self, store: Store) -> None:
        assert store.append("conf:ap", b"x") is False
        assert store.prepend("conf:ap", b"x") is False
        assert store.get("conf:ap") is None
        store.set("conf:ap", b"mid", flags=42)
        assert store.append("conf:ap", b">") is True
        assert store.prepend("conf:ap", b"<") is True
        item = store.get_item("conf:ap")
        assert item is not None
        assert (item.value, item.flags) == (b"<mid>", 42)

    def test_delete(self, store: Store) -> None:
        store.set("conf:d", b"v")
        assert store.delete("conf:d") is True
        assert store.delete("conf:d") is False
        assert store.get("conf:d") is None
        store.set_many({"conf:d1": b"1", "conf:d2": b"2", "conf:d3": b"3"})
        store.delete_many(["conf:d1", "conf:d2", "conf:never"])
        assert store.get_many(["conf:d1", "conf:d2", "conf:d3"]) == {"conf:d3": b"3"}

    # -- counters ------------------------------------------------------------------------

    def test_incr_decr(self, store: Store) -> None:
        assert store.incr("conf:n") is None
        assert store.decr("conf:n") is None
        store.set("conf:n", b"10", flags=3)
        assert store.incr("conf:n") == 11
        assert store.incr("conf:n", 9) == 20
        assert store.decr("conf:n", 5) == 15
        assert store.decr("conf:n", 100) == 0
        value = store.get("conf:n")
        assert value is not None and int(value) == 0
        item = store.get_item("conf:n")
        assert item is not None and item.flags == 3

    def test_incr_wraps_at_64_bits(self, store: Store) -> None:
        store.set("conf:w", str(_U64 - 2).encode())
        assert store.incr("conf:w", 1) == _U64 - 1
        assert store.incr("conf:w", 3) == 2
        value = store.get("conf:w")
        assert value is not None and int(value) == 2

    def test_incr_on_non_number(self, store: Store) -> None:
        store.set("conf:text", b"not a number")
        with pytest.raises(NonNumericValue):
            store.incr("conf:text")
        with pytest.raises(NonNumericValue):
            store.decr("conf:text")
        assert store.get("conf:text") == b"not a number"

    def test_cas_loop_from_threads_is_exact(self, store: Store) -> None:
        store.set("conf:counter", b"0")
        threads, rounds = 4, 40
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(rounds):
                    while True:
                        got = store.gets("conf:counter")
                        assert got is not None
                        value, token = got
                        if store.cas("conf:counter", b"%d" % (int(value) + 1), token):
                            break
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert not errors
        value = store.get("conf:counter")
        assert value is not None and int(value) == threads * rounds

    # -- expiry --------------------------------------------------------------------------

    def test_expiry(self, store: Store) -> None:
        far = time.time() + 3600 * 24 * 60  # absolute: more than 30 days from now
        store.set("conf:short", b"v", expire=self.short_expire)
        store.set("conf:touched", b"v", expire=self.short_expire)
        store.set("conf:long", b"v", expire=3600)
        store.set("conf:never", b"v", expire=0)
        store.set("conf:absolute", b"v", expire=int(far))
        store.set("conf:past", b"v", expire=int(time.time()) - 3600 * 24 * 60)
        store.set("conf:negative", b"v", expire=-1)
        assert store.touch("conf:touched", 3600) is True
        assert store.touch("conf:nothing", 3600) is False
        assert store.get("conf:past") is None
        assert store.get("conf:negative") is None
        assert store.get("conf:absolute") == b"v"
        time.sleep(self.expire_wait)
        assert store.get("conf:short") is None
        assert store.get_many(["conf:short", "conf:touched", "conf:long", "conf:never", "conf:absolute"]) == {
            "conf:touched": b"v", "conf:long": b"v", "conf:never": b"v", "conf:absolute": b"v",
        }
        assert store.add("conf:short", b"again") is True

    def test_touch_to_negative_expires(self, store: Store) -> None:
        store.set("conf:t", b"v")
        assert store.touch("conf:t", -1) is True
        assert store.get("conf:t") is None

    def test_flush_all(self, store: Store) -> None:
        store.set_many({"conf:f1": b"1", "conf:f2": b"2"})
        store.flush_all()
        assert store.get_many(["conf:f1", "conf:f2"]) == {}
        store.set("conf:f3", b"3")
        assert store.get("conf:f3") == b"3"

    # -- limits --------------------------------------------------------------------------

    def test_large_value(self, store: Store) -> None:
        big = bytes(range(256)) * (self.large_value // 256)
        store.set("conf:big", big)
        assert store.get("conf:big") == big
        with pytest.raises(ValueTooLarge):
            store.set("conf:huge", b"x" * self.too_large_value)
        assert store.get("conf:huge") is None

    @pytest.mark.parametrize("key, rule", [
        ("k" * 251, "250"),
        ("has space", "whitespace"),
        ("line\nbreak", "control"),
        ("tab\tkey", "control"),
        ("bell\x07", "control"),
        ("", "empty"),
    ])
    def test_bad_keys(self, store: Store, key: str, rule: str) -> None:
        for call in (lambda: store.get(key), lambda: store.set(key, b"v"), lambda: store.delete(key)):
            with pytest.raises(InvalidKey) as info:
                call()
            assert rule in str(info.value)
            if key:
                assert repr(key[:20])[1:-1] in str(info.value)

    def test_stats(self, store: Store) -> None:
        store.set("conf:s", b"v")
        store.get("conf:s")
        store.get("conf:nope")
        stats = store.stats()
        for name in ("curr_items", "total_items", "bytes", "limit_maxbytes", "get_hits", "get_misses",
                     "evictions", "cmd_get", "cmd_set", "pid", "uptime"):
            assert name in stats, name
        assert stats["curr_items"] >= 1 and stats["get_hits"] >= 1 and stats["get_misses"] >= 1

    def test_eviction_keeps_recent_items(self, small_store: Store) -> None:
        limit = small_store.stats()["limit_maxbytes"]
        value = b"e" * 20_000
        count = 3 * limit // len(value)
        for i in range(count):
            small_store.set(f"conf:ev:{i}", value)
        assert small_store.get(f"conf:ev:{count - 1}") == value
        assert small_store.get("conf:ev:0") is None
        stats = small_store.stats()
        assert stats["evictions"] > 0
        assert stats["bytes"] <= limit

    def test_unreachable_server(self, dead_store: Any) -> None:
        with pytest.raises(BackendUnavailable) as info:
            dead_store.get("conf:x")
        assert info.value.address
        assert info.value.address in str(info.value)
        with pytest.raises(BackendUnavailable):
            dead_store.set("conf:x", b"v")
