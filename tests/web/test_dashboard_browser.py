"""The ``/cachedeps/`` dashboard in a real headless Chromium, on the demo site.

Logs in as the demo's staff account, loads the dashboard, opens a page's tree down to a
query's SQL and its dependency keys, edits a bookmark, reloads and finds the write (table,
row, column, entries dropped) and the page's explained miss.
"""

from __future__ import annotations

import pytest

from tests.conftest import require

from .browser import chromium, demo_site, log_in, missing

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def site():
    require(missing() is None, str(missing()))
    with demo_site(bookmarks=40) as base:
        yield base


def test_dashboard_shows_trees_and_the_invalidation_of_an_edit(site):
    from selenium.webdriver.common.by import By

    with chromium() as driver:
        driver.get(site + "/cachedeps/")
        assert "what the cache is doing" not in driver.page_source  # staff only (DEBUG is off)
        log_in(driver, site)
        for path in ("/u/demo/", "/u/demo/", "/"):
            driver.get(site + path)
        driver.get(site + "/cachedeps/")
        assert driver.find_element(By.TAG_NAME, "h1").text == "cachedeps — what the cache is doing"
        kinds = driver.find_element(By.ID, "hit-rates").text
        for word in ("Pages", "Fragments", "Queries", "Rows", "Checkpoints"):
            assert word in kinds
        assert driver.find_elements(By.CSS_SELECTOR, "#chart svg rect"), "the chart drew no bar"

        # open the tree of /u/demo/: page -> queries with SQL -> dependency keys
        link = next(a for a in driver.find_elements(By.CSS_SELECTOR, "#pages a.page-link") if a.text == "/u/demo/")
        link.click()
        tree = driver.find_element(By.ID, "tree")
        page_node = tree.find_element(By.CSS_SELECTOR, "details.node.page")
        assert page_node.get_attribute("open") is not None
        query = tree.find_element(By.CSS_SELECTOR, "details.node.query")
        assert not query.find_element(By.CSS_SELECTOR, "pre.sql").is_displayed()  # collapsed
        query.find_element(By.TAG_NAME, "summary").click()
        sql = query.find_element(By.CSS_SELECTOR, "pre.sql")
        assert sql.is_displayed() and "SELECT" in sql.text
        driver.find_element(By.ID, "expand-all").click()
        keys = [c.text for c in tree.find_elements(By.CSS_SELECTOR, "details.deps li code")]
        assert any(k.startswith("bookmarks_bookmark") for k in keys), keys

        # edit one of demo's bookmarks, then see the write and the explained miss
        driver.get(site + "/u/demo/")
        driver.find_element(By.CSS_SELECTOR, "a[href*='/edit/']").click()
        pk = driver.current_url.rstrip("/").split("/")[-2]
        title = driver.find_element(By.ID, "id_title")
        title.clear()
        title.send_keys("Edited in the browser test")
        driver.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
        driver.get(site + "/u/demo/")
        assert "Edited in the browser test" in driver.page_source
        driver.get(site + "/cachedeps/")
        writes = driver.find_element(By.ID, "writes").find_elements(By.CSS_SELECTOR, "tr.write")
        newest = writes[0].text
        assert "bookmarks_bookmark" in newest and f"bookmarks_bookmark:{pk}" in newest
        assert "bookmarks_bookmark.title" in newest
        dropped = int(writes[0].find_elements(By.TAG_NAME, "td")[-1].text)
        assert dropped >= 1  # the cached /u/demo/ page at least
        link = next(a for a in driver.find_elements(By.CSS_SELECTOR, "#pages a.page-link") if a.text == "/u/demo/")
        link.click()
        explain = driver.find_element(By.ID, "explain").text
        assert "Why the last miss happened" in explain
        assert f"row {pk} of bookmarks_bookmark" in explain and "this process" in explain
