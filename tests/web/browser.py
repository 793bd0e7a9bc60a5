"""The demo site served by ``runserver`` in a child process, and a headless Chromium to drive it.

Used by the browser test (``test_dashboard_browser.py``) and by the screenshot script
(``python -m tests.web.screenshots``). Debian's ``chromium`` and ``chromium-driver``
packages provide the browser and its driver (``.ci/run`` installs them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from tests.conftest import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "testproject"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
DEMO_USER, DEMO_PASSWORD = "demo", "demo-password"


def missing() -> str | None:
    """Return why the browser cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        return "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
    return None


@contextmanager
def demo_site(bookmarks: int = 60) -> Iterator[str]:
    """Migrate and seed a fresh demo database, serve the site; yield its base URL."""
    with tempfile.TemporaryDirectory(prefix="cachedeps-demo-") as tmp:
        env = {**os.environ, "DEMO_DB": str(Path(tmp) / "demo.sqlite3"), "DJANGO_DEBUG": "0",
               "DEMO_CACHE_MODE": "cachedeps", "PYTHONPATH": str(ROOT)}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        manage = [sys.executable, str(PROJECT / "manage.py")]
        for args in (["migrate", "--noinput", "-v0"], ["seed_bookmarks", "--bookmarks", str(bookmarks)]):
            done = subprocess.run([*manage, *args], env=env, capture_output=True, text=True, timeout=120)
            if done.returncode:
                raise RuntimeError(f"demo {args[0]} failed: {done.stderr[-2000:]}")
        port = free_port()
        log = open(Path(tmp) / "server.log", "w")
        proc = subprocess.Popen([*manage, "runserver", "--noreload", f"127.0.0.1:{port}"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_port(port, timeout=30)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[Any]:
    """Yield a selenium driver of a headless Chromium with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="cachedeps-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
                     f"--window-size={width},{height}", "--hide-scrollbars", "--lang=en-US"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        driver.set_page_load_timeout(30)
        try:
            yield driver
        finally:
            driver.quit()


def log_in(driver: Any, base: str) -> None:
    """Log in as the demo's staff account."""
    from selenium.webdriver.common.by import By

    driver.get(base + "/accounts/login/")
    driver.find_element(By.ID, "id_username").send_keys(DEMO_USER)
    driver.find_element(By.ID, "id_password").send_keys(DEMO_PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
