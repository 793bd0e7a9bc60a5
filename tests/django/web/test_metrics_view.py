"""``CACHEDEPS["METRICS"]`` and the ``/metrics`` view: a scrape after real requests reports
the hits, misses, invalidations and polls they caused; checks name a missing client library."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import Client, override_settings
from django.urls import include, path

from tests.django.testapp.models import Author, Book

prometheus_client = pytest.importorskip("prometheus_client")

pytestmark = pytest.mark.django_db(transaction=True)


def shelf(request, pk):
    """Read a book by primary key (an object state) and its author's books (a query entry)."""
    book = Book.objects.get(pk=pk)
    titles = list(Book.objects.filter(author_id=book.author_id).values_list("title", flat=True))
    return HttpResponse(",".join(titles))


urlpatterns = [
    path("shelf/<int:pk>/", shelf),
    path("cachedeps/", include("django_cachedeps.urls")),
]

METRICS_ON = {"CACHE": "default", "METRICS": ["prometheus"]}


def scrape(client: Client) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/cachedeps/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(response.content.decode()) for s in fam.samples}


def delta(after: dict, before: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0) - before.get(key, 0)


@pytest.fixture
def metrics_on(engine):
    from cachedeps.metrics import prometheus

    prometheus.uninstall()
    with override_settings(CACHEDEPS=METRICS_ON, ROOT_URLCONF=__name__):
        assert prometheus.installed() is not None  # installed when the setting names it
        yield
    assert prometheus.installed() is None  # and removed when it no longer does


def test_a_scrape_reports_the_traffic_of_real_requests(metrics_on):
    author = Author.objects.create(name="Ann")
    book = Book.objects.create(author=author, title="Alpha", isbn="1")
    client = Client()
    before = scrape(client)
    for _ in range(3):
        assert client.get(f"/shelf/{book.pk}/").content == b"Alpha"
    Book.objects.filter(pk=book.pk).update(title="Beta")
    assert client.get(f"/shelf/{book.pk}/").content == b"Beta"
    after = scrape(client)
    # request 1 misses both reads; 2 and 3 hit both; after the write, request 4 misses both
    # (the writer's own process purged the entries: misses, not stale rejections)
    assert delta(after, before, "cachedeps_hits_total", kind="state") == 2
    assert delta(after, before, "cachedeps_hits_total", kind="entry") == 2
    assert delta(after, before, "cachedeps_misses_total", kind="state") == 2
    assert delta(after, before, "cachedeps_misses_total", kind="entry") == 2
    assert delta(after, before, "cachedeps_sets_total") >= 1
    assert delta(after, before, "cachedeps_commits_total") == 1
    assert delta(after, before, "cachedeps_invalidations_total") >= 3  # table, oid, field keys...
    assert delta(after, before, "cachedeps_poll_seconds_count") >= 4  # one poll per request at least
    assert delta(after, before, "cachedeps_store_errors_total") == 0


def test_the_view_is_a_404_unless_prometheus_is_configured(engine):
    with override_settings(CACHEDEPS={"CACHE": "default"}, ROOT_URLCONF=__name__):
        response = Client().get("/cachedeps/metrics")
    assert response.status_code == 404


def test_a_missing_client_library_is_check_error_e011(monkeypatch):
    import importlib.util

    from django_cachedeps import checks

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith(("prometheus_client", "opentelemetry")) else real(name, *a))
    with override_settings(CACHEDEPS={"CACHE": "default", "METRICS": ["prometheus", "otel"]}):
        found = checks.check_metrics()
    assert [m.id for m in found] == ["cachedeps.E011", "cachedeps.E011"]
    assert "cachedeps[prometheus]" in found[0].hint and "cachedeps[otel]" in found[1].hint


def test_a_bad_metrics_setting_is_e001():
    from django_cachedeps import checks

    with override_settings(CACHEDEPS={"CACHE": "default", "METRICS": ["statsd"]}):
        found = checks.check_settings()
    assert found and found[0].id == "cachedeps.E001" and "statsd" in found[0].msg
