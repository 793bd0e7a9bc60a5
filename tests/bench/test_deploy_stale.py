"""The deploy benchmark's stale-page checker, on recorded logs (benchmarks/deploy/stale.py).

A checker that passes stale pages would make the benchmark's "0 stale" meaningless, and one
that flags fresh pages would hide the comparison: both directions are pinned here.
"""

from __future__ import annotations

from benchmarks.deploy import stale
from benchmarks.deploy.stale import Bookmark, check, parse_log


def _site() -> dict[int, Bookmark]:
    """Two users; ann's three bookmarks, newest first by created: 3, 2, 1."""
    return {
        1: Bookmark(1, "https://e.org/1", "ann", 100.0, frozenset({"sql"}), "One", 2),
        2: Bookmark(2, "https://e.org/2", "ann", 200.0, frozenset({"sql", "web"}), "Two", 3),
        3: Bookmark(3, "https://e.org/3", "ann", 300.0, frozenset(), "Three", 1),
        4: Bookmark(4, "https://e.org/4", "bob", 250.0, frozenset({"web"}), "Four", 5),
    }


def _read(start: float, end: float, path: str, items: list[tuple[str, str, int | str]]) -> str:
    fields = ["R", "1", f"{start:.6f}", f"{end:.6f}", "200", path, "3", "1", "0.001", "0.0002"]
    for url, title, imp in items:
        fields += [url, title, str(imp)]
    return "\t".join(fields)


def _write(seq: int, bid: int, start: float, end: float | None, title: str, imp: int, status: int = 302) -> list[str]:
    lines = [f"W\t2\t{seq}\t{bid}\t{start:.6f}\t{title}\t{imp}"]
    if end is not None:
        lines.append(f"E\t2\t{seq}\t{end:.6f}\t{status}")
    return lines


BY_DATE = "/u/ann/?order=date&page=1"
BY_IMPORTANCE = "/u/ann/?order=importance&page=1"
OLD = [("https://e.org/3", "Three", 1), ("https://e.org/2", "Two", 3), ("https://e.org/1", "One", 2)]
NEW = [("https://e.org/3", "Three", 1), ("https://e.org/2", "Two ~2.1", 5), ("https://e.org/1", "One", 2)]


def test_a_page_missing_a_write_committed_before_it_started_is_stale() -> None:
    writes, reads = parse_log(_write(1, 2, 10.0, 10.5, "Two ~2.1", 5)
                              + [_read(11.0, 11.1, BY_DATE, OLD), _read(11.2, 11.3, BY_DATE, NEW)])
    verdict = check(_site(), writes, reads)
    assert (verdict.checked, verdict.stale) == (2, 1)
    assert "Two ~2.1" in verdict.examples[0]


def test_a_write_in_flight_may_show_or_not() -> None:
    # The read started before the POST's response came back: old and new are both right.
    lines = _write(1, 2, 10.0, 10.5, "Two ~2.1", 5)
    for items in (OLD, NEW):
        writes, reads = parse_log(lines + [_read(10.2, 10.3, BY_DATE, items)])
        assert check(_site(), writes, reads).stale == 0
    # A read that ended before the write was sent cannot show it.
    writes, reads = parse_log(lines + [_read(9.0, 9.5, BY_DATE, NEW)])
    assert check(_site(), writes, reads).stale == 1


def test_order_by_importance_follows_the_writes() -> None:
    lines = _write(1, 3, 10.0, 10.5, "Three ~2.1", 5)
    moved = [("https://e.org/3", "Three ~2.1", 5), ("https://e.org/2", "Two", 3), ("https://e.org/1", "One", 2)]
    kept_place = [("https://e.org/2", "Two", 3), ("https://e.org/1", "One", 2), ("https://e.org/3", "Three ~2.1", 5)]
    writes, reads = parse_log(lines + [_read(11.0, 11.1, BY_IMPORTANCE, moved),
                                       _read(11.2, 11.3, BY_IMPORTANCE, kept_place)])
    verdict = check(_site(), writes, reads)
    assert (verdict.checked, verdict.stale) == (2, 1)


def test_refused_forms_change_nothing_and_pages_of_others_are_checked() -> None:
    lines = _write(1, 2, 10.0, 10.5, "Two ~2.1", 9, status=200)  # the form came back with an error
    home = [("https://e.org/3", "Three", 1), ("https://e.org/4", "Four", 5), ("https://e.org/2", "Two", 3),
            ("https://e.org/1", "One", 2)]
    tag = [("https://e.org/4", "Four", 5), ("https://e.org/2", "Two", 3)]
    feed = [("https://e.org/3", "Three", None), ("https://e.org/2", "Two", None), ("https://e.org/1", "One", None)]
    writes, reads = parse_log(lines + [_read(11.0, 11.1, "/", home), _read(11.0, 11.1, "/t/web/", tag),
                                       _read(11.0, 11.1, "/u/ann/feed/", [(u, t, "-") for u, t, _ in feed])])
    verdict = check(_site(), writes, reads)
    assert (verdict.checked, verdict.stale) == (3, 0)
    assert stale.expected("/u/ann/feed/", {b.id: (b.title, b.importance) for b in _site().values()},
                          stale.Index(_site())) == feed


def test_final_rows_the_log_cannot_explain_are_reported() -> None:
    writes, reads = parse_log(_write(1, 2, 10.0, 10.5, "Two ~2.1", 5) + _write(2, 1, 12.0, None, "One ~2.2", 4))
    rows = {1: ("One", 2), 2: ("Two ~2.1", 5), 3: ("Three", 1), 4: ("Four", 5)}
    assert check(_site(), writes, reads, rows).final_mismatch == []
    rows[1] = ("One ~2.2", 4)  # the unanswered write may have committed
    assert check(_site(), writes, reads, rows).final_mismatch == []
    rows[3] = ("Three ~9.9", 1)  # a change no logged write made: the log lost something
    assert check(_site(), writes, reads, rows).final_mismatch == [3]


def _form(start: float, end: float, bid: int, item: tuple[str, str, int] | None, queries: int = 1) -> str:
    fields = ["G", "2", f"{start:.6f}", f"{end:.6f}", "200", str(bid), str(queries), "1", "0.001", "0.0002"]
    if item is not None:
        fields += [item[0], item[1], str(item[2])]
    return "\t".join(fields)


def test_an_edit_form_missing_its_bookmarks_last_write_is_stale() -> None:
    """The edit form's fields are cached (a fragment): one that shows the bookmark before a
    write committed before the form was read is stale, like a page."""
    lines = _write(1, 2, 10.0, 10.5, "Two ~2.1", 5)
    writes, reads = parse_log(lines + [_form(11.0, 11.1, 2, ("https://e.org/2", "Two", 3)),
                                       _form(11.2, 11.3, 2, ("https://e.org/2", "Two ~2.1", 5)),
                                       _form(10.2, 10.3, 2, ("https://e.org/2", "Two", 3))])  # in flight: either
    assert [r.form for r in reads] == [True, True, True]
    assert [r.path for r in reads] == ["/b/2/edit/"] * 3
    verdict = check(_site(), writes, reads)
    assert (verdict.checked, verdict.stale) == (3, 1)
    assert "/b/2/edit/" in verdict.examples[0]


def test_an_edit_form_whose_fields_were_not_found_is_flagged_not_passed() -> None:
    """A form page the load script could not read the fields of (the markup changed) counts
    as stale rather than checked clean; a line in the older format (no fields) is skipped."""
    writes, reads = parse_log([_form(11.0, 11.1, 2, None), "G\t2\t11.000000\t11.100000\t200"])
    assert len(reads) == 1 and reads[0].items == []
    assert check(_site(), writes, reads).stale == 1
