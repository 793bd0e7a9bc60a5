"""Process-wide event listeners (``cachedeps.events``) and the metrics exporters built on them:
Prometheus (one process and prometheus_client's multiprocess mode across real processes)
and OpenTelemetry (the SDK's in-memory reader). Every figure is asserted after known traffic."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cachedeps import events
from cachedeps.cache import Cache
from cachedeps.store.embedded import EmbeddedStore

from ._support import DictStore

prometheus_client = pytest.importorskip("prometheus_client")


def traffic(store) -> Cache:
    """Known traffic on two caches over one store and store feed (``trees=False`` on the
    reader, so a change shows as a stale rejection rather than a purge).

    Expected: entry hits 2, entry misses 2, stale 1, state hits 1, state misses 1, sets 3,
    commits 1 with 2 keys, purges >= 1, polls >= 3, store errors 0.
    """
    writer = Cache(store)
    reader = Cache(store, feed=writer.feed, trees=False)
    writer.poll()
    reader.poll()
    writer.get("q")                                  # miss
    writer.set("q", [1], depends_on=["book:1"])      # set
    writer.get("q"), writer.get("q")                 # 2 hits
    reader.set("r", "v", depends_on=["book:1"])      # set (reader's, no tree link)
    reader.get_state("author:1")                     # state miss
    reader.set_state("author:1", {"name": "Ann"})
    reader.get_state("author:1")                     # state hit
    writer.invalidate("book:1", "book")              # commit of 2 keys, purges writer's "q"
    writer.get("q")                                  # miss (purged)
    reader.poll()
    reader.get("r")                                  # stale: book:1 changed after it was stamped
    return writer


def figures(registry) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    from cachedeps.metrics import prometheus

    body = prometheus.render(registry)[0].decode()  # flushes the caches' figures first
    out = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_a_process_wide_listener_sees_every_cache_and_costs_nothing_once_removed():
    store = EmbeddedStore(background=False)
    before = Cache(store)
    seen = []

    def listen(cache, event, key, **detail):
        seen.append((cache, event))

    assert before._stats.listening is False
    events.add_listener(listen)
    try:
        after = Cache(store)
        assert before._stats.listening and after._stats.listening
        before.poll()
        after.get("x")
    finally:
        events.remove_listener(listen)
    assert (before, "poll") in seen and (after, "miss") in seen
    assert before._stats.listening is False and after._stats.listening is False
    after.get("x")
    assert len([s for s in seen if s[1] == "miss"]) == 1


def test_poll_events_carry_their_duration_and_store_failures_are_events():
    store = DictStore()
    cache = Cache(store)
    got = []
    cache.add_listener(lambda event, key, **detail: got.append((event, detail)))
    cache.poll()
    store.down = True
    cache.get("x")
    polls = [d for e, d in got if e == "poll"]
    assert polls and 0 <= polls[0]["seconds"] < 5
    errors = [d for e, d in got if e == "store_error"]
    assert errors and "connection refused" in str(errors[0]["error"])


@pytest.fixture
def registry():
    from cachedeps.metrics import prometheus

    prometheus.uninstall()
    reg = prometheus_client.CollectorRegistry()
    exporter = prometheus.install(reg)
    yield reg
    prometheus.uninstall()
    assert exporter not in events.listeners()


def test_prometheus_counts_the_engine_traffic(registry):
    traffic(EmbeddedStore(background=False))
    f = figures(registry)
    assert f[("cachedeps_hits_total", (("kind", "entry"),))] == 2
    assert f[("cachedeps_misses_total", (("kind", "entry"),))] == 2
    assert f[("cachedeps_stale_total", (("kind", "entry"),))] == 1
    assert f[("cachedeps_hits_total", (("kind", "state"),))] == 1
    assert f[("cachedeps_misses_total", (("kind", "state"),))] == 1
    assert f[("cachedeps_sets_total", ())] == 3
    assert f[("cachedeps_commits_total", ())] == 1
    assert f[("cachedeps_invalidations_total", ())] == 2
    assert f[("cachedeps_purges_total", ())] >= 1
    assert f[("cachedeps_store_errors_total", ())] == 0
    assert f[("cachedeps_poll_seconds_count", ())] >= 3
    assert 0 < f[("cachedeps_poll_seconds_sum", ())] < 5


def test_exporters_leave_hits_free_of_events(registry):
    """A hit pays nothing for the exporter: no per-read event is built (the figures come from
    the counters the cache keeps anyway), only polls and commits are listened to."""
    cache = Cache(EmbeddedStore(background=False))
    assert cache._stats.listening is False and cache._stats.watching is True
    cache.poll()
    cache.set("q", 1, depends_on=["a:1"])
    cache.get("q")
    assert figures(registry)[("cachedeps_hits_total", (("kind", "entry"),))] == 1


def test_prometheus_counts_store_errors(registry):
    store = DictStore()
    cache = Cache(store)
    store.down = True
    cache.get("x")
    cache.get("y")
    assert figures(registry)[("cachedeps_misses_total", (("kind", "entry"),))] == 2
    assert figures(registry)[("cachedeps_store_errors_total", ())] == 2


def test_the_prometheus_exporter_is_installed_once_and_removed_cleanly(registry):
    from cachedeps.metrics import prometheus

    assert prometheus.install() is prometheus.installed()  # idempotent: no duplicate metrics
    prometheus.uninstall()
    assert prometheus.installed() is None
    Cache(EmbeddedStore(background=False)).get("x")
    assert "cachedeps_hits_total" not in prometheus_client.generate_latest(registry).decode()
    prometheus.install(registry)  # the fixture's teardown uninstalls it again


_WORKER = """
import sys
from cachedeps.metrics import prometheus
from cachedeps.store.embedded import EmbeddedStore
sys.path.insert(0, {root!r})
from tests.core.test_metrics import traffic
prometheus.install()
traffic(EmbeddedStore(background=False))
prometheus.flush()  # figures counted since the last poll, before the worker exits
print("done")
"""


def test_prometheus_multiprocess_mode_adds_up_every_worker(tmp_path, monkeypatch):
    """Two worker processes write their figures to PROMETHEUS_MULTIPROC_DIR; a scrape in a
    third (render(), as the /metrics view does) adds them up."""
    from cachedeps.metrics import prometheus

    root = os.getcwd()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", _WORKER.format(root=root)], env=env, cwd=root,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "done" in done.stdout, done.stderr
    assert list(tmp_path.glob("counter_*.db")) and list(tmp_path.glob("histogram_*.db"))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    body, content_type = prometheus.render()
    assert content_type.startswith("text/plain")
    from prometheus_client.parser import text_string_to_metric_families

    f = {(s.name, tuple(sorted(s.labels.items()))): s.value
         for fam in text_string_to_metric_families(body.decode()) for s in fam.samples}
    assert f[("cachedeps_hits_total", (("kind", "entry"),))] == 4
    assert f[("cachedeps_stale_total", (("kind", "entry"),))] == 2
    assert f[("cachedeps_invalidations_total", ())] == 4
    assert f[("cachedeps_poll_seconds_count", ())] >= 6


def test_opentelemetry_counts_the_engine_traffic():
    pytest.importorskip("opentelemetry.sdk.metrics")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from cachedeps.metrics.otel import OtelExporter

    reader = InMemoryMetricReader()
    exporter = OtelExporter(MeterProvider(metric_readers=[reader]))
    exporter.install()
    try:
        traffic(EmbeddedStore(background=False))
    finally:
        exporter.uninstall()
    points: dict[tuple[str, tuple], object] = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            assert sm.scope.name == "cachedeps"
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    points[(metric.name, tuple(sorted((p.attributes or {}).items())))] = p
    assert points[("cachedeps.hits", (("kind", "entry"),))].value == 2
    assert points[("cachedeps.misses", (("kind", "entry"),))].value == 2
    assert points[("cachedeps.stale", (("kind", "entry"),))].value == 1
    assert points[("cachedeps.hits", (("kind", "state"),))].value == 1
    assert points[("cachedeps.sets", ())].value == 3
    assert points[("cachedeps.invalidations", ())].value == 2
    assert points[("cachedeps.commits", ())].value == 1
    assert points[("cachedeps.purges", ())].value >= 1
    poll = points[("cachedeps.poll.duration", ())]
    assert poll.count >= 3 and 0 < poll.sum < 5
    assert ("cachedeps.store_errors", ()) not in points  # nothing failed: no point yet


def test_a_missing_client_library_names_the_extra(monkeypatch):
    from cachedeps.errors import ConfigurationError
    from cachedeps.metrics import otel, prometheus

    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ConfigurationError, match=r"cachedeps\[prometheus\]"):
        prometheus.PrometheusExporter()
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ConfigurationError, match=r"cachedeps\[otel\]"):
        otel.OtelExporter()
