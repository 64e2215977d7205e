"""Fixtures shared by the browser tests in this folder."""

from __future__ import annotations

import pytest
from browser_helpers import launch_chromium


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium (never downloaded), one per test module, closed after it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch_chromium(pw)
        try:
            yield b
        finally:
            b.close()
