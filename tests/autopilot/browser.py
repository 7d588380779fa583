"""Headless Chromium driven by selenium, with the system's browser and driver (Debian's
``chromium`` and ``chromium-driver``): nothing is downloaded."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

from tests.servers import servers_required

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser_missing() -> str | None:
    if not any(shutil.which(b) for b in BROWSERS):
        return "no chromium binary (install Debian's chromium)"
    if not shutil.which("chromedriver"):
        return "no chromedriver (install Debian's chromium-driver)"
    return None


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a fresh profile; skips (or fails in CI) when missing."""
    reason = browser_missing()
    if reason is not None:
        if servers_required():
            pytest.fail(f"headless Chromium is required here: {reason}")
        pytest.skip(reason)
    binary = next(b for b in (shutil.which(n) for n in BROWSERS) if b)
    driver_path = shutil.which("chromedriver")
    assert driver_path is not None
    with tempfile.TemporaryDirectory(prefix="motanmesh-chromium-") as profile:
        options = Options()
        options.binary_location = binary
        for arg in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
        ):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        driver.set_page_load_timeout(30)
        try:
            yield driver
        finally:
            driver.quit()
