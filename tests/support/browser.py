"""Headless Chromium (Debian's chromium and chromedriver) for the tests that look at a page."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

BASE_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync")


@contextmanager
def headless_chromium(flags: Sequence[str] = (), page_load_timeout: float | None = None) -> Iterator:
    """A fresh headless Chromium (a selenium driver), quit at the end of the block."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in dict.fromkeys([*BASE_FLAGS, *flags]):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    if page_load_timeout is not None:
        driver.set_page_load_timeout(page_load_timeout)
    try:
        yield driver
    finally:
        driver.quit()
