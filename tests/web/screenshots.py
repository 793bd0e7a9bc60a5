"""Take the dashboard's screenshots in docs/img/ through the browser the tests use.

    python -m tests.web.screenshots          (or: make screenshots)

Serves the demo site on a fresh database, browses it as visitors do, edits a bookmark,
then shoots ``/cachedeps/`` (docs/img/dashboard.png) and one page's tree
(docs/img/dashboard-tree.png).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .browser import ROOT, chromium, demo_site, log_in, missing

OUT = ROOT / "docs" / "img"


def browse_and_edit(driver: Any, base: str) -> None:
    """Visit the demo's pages as a visitor, log in as staff, edit a bookmark, visit again."""
    from selenium.webdriver.common.by import By

    import time

    for round_ in range(3):  # three stretches of the chart
        if round_:
            time.sleep(10)
        for path in ("/", "/u/alice/", "/t/python/", "/u/bob/", "/u/alice/", "/"):
            driver.get(base + path)
    log_in(driver, base)
    driver.get(base + "/u/demo/")
    driver.find_element(By.CSS_SELECTOR, "a[href*='/edit/']").click()
    title = driver.find_element(By.ID, "id_title")
    title.clear()
    title.send_keys("Edited from the browser")
    driver.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    for path in ("/", "/u/demo/", "/u/demo/", "/"):
        driver.get(base + path)


def shoot(driver: Any, path: Path, width: int = 1280) -> None:
    """Save a screenshot of the whole page."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(int(height) + 20, 4000))
    driver.save_screenshot(str(path))
    driver.set_window_size(width, 900)


def main() -> int:
    from selenium.webdriver.common.by import By

    reason = missing()
    if reason:
        print(f"cannot take screenshots: {reason}", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    with demo_site() as base, chromium() as driver:
        browse_and_edit(driver, base)
        driver.get(base + "/cachedeps/")
        shoot(driver, OUT / "dashboard.png")
        driver.find_element(By.CSS_SELECTOR, "#pages a.page-link[href]").click()
        # open the first fragment and its first query, as a reader would
        driver.execute_script(
            "const f = document.querySelector('#tree details.fragment');"
            "if (f) { f.open = true; const q = f.querySelector('details.query'); if (q) q.open = true;"
            "  f.querySelectorAll('details.deps').forEach(d => d.open = true); }")
        driver.execute_script("window.scrollTo(0, document.getElementById('tree').offsetTop - 10)")
        driver.set_window_size(1280, 1000)
        driver.save_screenshot(str(OUT / "dashboard-tree.png"))
    print(f"wrote {OUT / 'dashboard.png'} and {OUT / 'dashboard-tree.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
