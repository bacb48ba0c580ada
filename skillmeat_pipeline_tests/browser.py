"""Headless Chromium through Playwright, for end-to-end tests of the Dagster UI.

Playwright drives Debian's Chromium (`executable_path`): nothing is downloaded, and the browser
talks to nothing but loopback.

    with chromium_page() as page:
        page.goto("http://127.0.0.1:3000/assets/...")
        wait_for_text(page, ["acme/tiny-tools"], timeout_s=60)
        page.screenshot(path=path)
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from playwright.sync_api import Page, sync_playwright

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
# flags for a sandboxed machine: no GPU, no background traffic
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


class BrowserError(RuntimeError):
    pass


def find_chromium() -> str | None:
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


@contextmanager
def chromium_page(width: int = 1600, height: int = 1000) -> Iterator[Page]:
    """A page of a fresh headless Chromium, closed with the browser on exit."""
    executable = find_chromium()
    if executable is None:
        raise BrowserError("Chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def wait_for_pattern(page: Page, pattern: str, timeout_s: float = 60) -> str:
    """The page's visible text once it matches `pattern` (a multi-line regular expression)."""
    page.wait_for_function(
        "pattern => new RegExp(pattern, 'm').test(document.body.innerText)",
        arg=pattern,
        timeout=timeout_s * 1000,
    )
    return page.inner_text("body")


def wait_for_text(page: Page, needles: Sequence[str], timeout_s: float = 60) -> str:
    """The page's visible text once it holds every one of `needles`."""
    lookaheads = "".join(f"(?=[\\s\\S]*{re.escape(needle)})" for needle in needles)
    return wait_for_pattern(page, f"^{lookaheads}", timeout_s)
