"""A headless Chromium driven by Playwright, for the dashboard's browser tests.

Debian's ``chromium`` (``scripts/test.sh`` installs it when missing) is used, never a
browser Playwright downloads. One browser per test module (keep the browser tests in one):
Playwright's sync API keeps an event loop running in the main thread while it lives, which
would make ``asyncio.run`` fail in the tests after it. Each test gets a fresh context (its
own cookies, credentials and storage). Nothing is skipped: a browser that cannot start
fails the tests that need it, with the reason.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

#: The browser binary: Debian's package, overridable for other systems.
CHROMIUM = os.environ.get("SPINACH_CHROMIUM", "/usr/bin/chromium")

#: Flags of a quiet, throwaway browser: no sandbox (tests may run as root), no GPU, no
#: first-run screens and no traffic of its own (updates, sync, background services).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: Milliseconds Playwright's expectations and actions wait: generous for a loaded machine,
#: never spent by a passing test.
BROWSER_TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """The module's Chromium (a Playwright ``Browser``), stopped after its last test."""
    from playwright.sync_api import expect, sync_playwright

    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test.sh does)")
    expect.set_options(timeout=BROWSER_TIMEOUT_MS)
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
        except Exception as exc:
            pytest.fail(f"chromium ({CHROMIUM}) cannot start: {exc}")
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page in a fresh browser context, closed after the test."""
    context = browser.new_context()
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()
