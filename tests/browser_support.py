"""Headless Chromium for the HTML report tests: Debian's chromium driven by Playwright's Python package.

Nothing is downloaded from a browser vendor: Playwright is pointed at the system Chromium. Where
Chromium or Playwright is missing the tests skip naming it; with CI=true they fail instead.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import pytest

CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


def _missing(what: str):
    message = f"{what} is not installed (.ci/run installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


class Browser:
    """One Chromium with a fresh profile (its --user-data-dir); ``open`` gives a page that logs console messages and requests."""

    def __init__(self):
        path = chromium_path()
        if not path:
            _missing("chromium (apt-get install chromium)")
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            _missing("the playwright Python package")
        self.profile = tempfile.TemporaryDirectory(prefix="damo-chromium-")
        self._pw = sync_playwright().start()
        self.context = self._pw.chromium.launch_persistent_context(
            self.profile.name, executable_path=path, args=CHROMIUM_ARGS,
            headless=True, viewport={"width": 1400, "height": 1000})

    def open(self, html_path, color_scheme: str = "light"):
        page = self.context.new_page()
        page.emulate_media(color_scheme=color_scheme)
        page.messages = []
        page.requests = []
        page.on("console", lambda m: page.messages.append((m.type, m.text)))
        page.on("pageerror", lambda e: page.messages.append(("pageerror", str(e))))
        page.on("request", lambda r: page.requests.append(r.url))
        page.goto(f"file://{os.path.abspath(html_path)}")
        page.wait_for_function("window.damoReport && window.damoReport.allLevels", timeout=60000)
        return page

    def close(self):
        self.context.close()
        self._pw.stop()
        self.profile.cleanup()
