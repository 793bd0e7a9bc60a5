"""Several processes on real memcached: the deque and MCAS under contention.

Short runs in the normal suite; the long ones are marked ``slow``.
"""

from __future__ import annotations

import multiprocessing
import random
import signal
import time
import uuid

import pytest

from cachedeps.deque import Deque
from cachedeps.mcas import mcas_add, mcas_get_many

from ._mcas_support import deque_worker, open_store, transfer_worker

PROCESSES = 4


def _addresses(request, pool: bool) -> list[str]:
    if pool:
        return [s.address for s in request.getfixturevalue("memcached_pool")]
    return [request.getfixturevalue("memcached").address]


def _run_deque(addresses: list[str], per_producer: int) -> None:
    name = f"stress{uuid.uuid4().hex[:10]}"
    store = open_store(addresses)
    deque = Deque.create(store, name)
    produced = [list(range(p, per_producer * 2, 2)) for p in range(2)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(PROCESSES) as pool:
        producers = [pool.apply_async(deque_worker, (addresses, name, "producer", ids, 0)) for ids in produced]
        consumers = [pool.apply_async(deque_worker, (addresses, name, "consumer", [], 120)) for _ in range(2)]
        for result in producers:
            result.get(timeout=120)
        store.set(f"{name}:done", b"1")
        consumed = [i for result in consumers for i in result.get(timeout=120)]
    assert len(consumed) == len(set(consumed)), "an element was consumed twice"
    assert sorted(consumed) == list(range(per_producer * 2)), "an element was lost"
    assert len(deque) == 0
    store.close()


def _run_deque_with_a_killed_producer(addresses: list[str], per_producer: int) -> None:
    """One of two producers is SIGKILLed mid-run: what it pushed is a prefix of its ids."""
    name = f"kq{uuid.uuid4().hex[:10]}"
    store = open_store(addresses)
    Deque.create(store, name)
    survivor_ids = list(range(0, per_producer * 2, 2))
    victim_ids = list(range(1, per_producer * 2, 2))
    ctx = multiprocessing.get_context("spawn")
    victim = ctx.Process(target=deque_worker, args=(addresses, name, "producer", victim_ids, 0))
    victim.start()
    with ctx.Pool(PROCESSES - 1) as pool:
        producer = pool.apply_async(deque_worker, (addresses, name, "producer", survivor_ids, 0))
        consumers = [pool.apply_async(deque_worker, (addresses, name, "consumer", [], 120)) for _ in range(2)]
        time.sleep(random.uniform(1.0, 2.0))
        victim.kill()
        victim.join()
        producer.get(timeout=120)
        store.set(f"{name}:done", b"1")
        consumed = [i for result in consumers for i in result.get(timeout=120)]
    assert len(consumed) == len(set(consumed)), "an element was consumed twice"
    assert set(survivor_ids) <= set(consumed), "an element of the surviving producer was lost"
    pushed = sorted(i for i in consumed if i % 2)
    assert len(pushed) < len(victim_ids), "the producer finished before it was killed"
    assert pushed == victim_ids[: len(pushed)], "the killed producer's elements are not a prefix"
    store.close()


def _run_transfers(addresses: list[str], accounts: int, per_process: int) -> None:
    prefix = f"acct{uuid.uuid4().hex[:8]}"
    keys = [f"{prefix}:{i}" for i in range(accounts)]
    store = open_store(addresses)
    for k in keys:
        assert mcas_add(store, k, 1000)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(PROCESSES) as pool:
        results = [pool.apply_async(transfer_worker, (addresses, keys, per_process, seed)) for seed in range(PROCESSES)]
        outcomes = [r.get(timeout=120) for r in results]
    balances = {k: e.value for k, e in mcas_get_many(store, keys).items()}
    assert len(balances) == accounts, "an account vanished"
    assert sum(balances.values()) == 1000 * accounts, balances
    assert min(balances.values()) >= 0, balances
    assert sum(done for done, _ in outcomes) == PROCESSES * per_process
    assert sum(failed for _, failed in outcomes) > 0, "the processes never contended"
    store.close()


def _run_transfers_with_a_killed_process(addresses: list[str], per_process: int) -> None:
    """A fourth process is killed (SIGKILL) mid-run; the others are not blocked."""
    prefix = f"kill{uuid.uuid4().hex[:8]}"
    keys = [f"{prefix}:{i}" for i in range(5)]
    beacon = f"{prefix}:beacon"
    store = open_store(addresses)
    for k in keys:
        assert mcas_add(store, k, 1000)
    ctx = multiprocessing.get_context("spawn")
    victim = ctx.Process(target=transfer_worker, args=(addresses, keys, 10**9, 99, beacon))
    victim.start()
    with ctx.Pool(PROCESSES - 1) as pool:
        results = [pool.apply_async(transfer_worker, (addresses, keys, per_process, seed))
                   for seed in range(PROCESSES - 1)]
        deadline = time.monotonic() + 60
        while store.get(beacon) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(random.uniform(0.05, 0.3))
        victim.kill()
        victim.join()
        outcomes = [r.get(timeout=120) for r in results]
    assert victim.exitcode == -signal.SIGKILL
    balances = {k: e.value for k, e in mcas_get_many(store, keys).items()}
    assert len(balances) == len(keys), "an account vanished"
    assert sum(balances.values()) == 1000 * len(keys), balances
    assert min(balances.values()) >= 0, balances
    assert sum(done for done, _ in outcomes) == (PROCESSES - 1) * per_process
    store.close()


@pytest.mark.memcached
def test_mcas_transfers_processes_one_killed_mid_operation(request):
    _run_transfers_with_a_killed_process(_addresses(request, pool=True), per_process=200)


@pytest.mark.memcached
def test_deque_producers_and_consumers_processes(request):
    _run_deque(_addresses(request, pool=False), per_producer=400)




@pytest.mark.slow
@pytest.mark.memcached
@pytest.mark.parametrize("pool", [False, True], ids=["one", "pool"])
def test_deque_producers_and_consumers_processes_long(request, pool):
    _run_deque(_addresses(request, pool), per_producer=3000)


@pytest.mark.slow
@pytest.mark.memcached
@pytest.mark.parametrize("pool", [False, True], ids=["one", "pool"])
def test_mcas_transfers_processes_long(request, pool):
    _run_transfers(_addresses(request, pool), accounts=10, per_process=1500)


@pytest.mark.slow
@pytest.mark.memcached
@pytest.mark.parametrize("run", range(3))
def test_deque_survives_a_killed_producer_long(request, run):
    _run_deque_with_a_killed_producer(_addresses(request, pool=run % 2 == 1), per_producer=2000)


@pytest.mark.slow
@pytest.mark.memcached
@pytest.mark.parametrize("run", range(5))
def test_mcas_survives_killed_processes_long(request, run):
    _run_transfers_with_a_killed_process(_addresses(request, pool=run % 2 == 0), per_process=600)
