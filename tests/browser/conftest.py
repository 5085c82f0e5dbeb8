"""What the browser tests share: the system's Chromium (Debian's package), driven headless by
Playwright; nothing is downloaded. Every test here is skipped, saying why, where it is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
# Headless, and quiet on a machine with no network: no background calls home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def pytest_collection_modifyitems(config, items):
    if not Path(CHROMIUM).exists():
        skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM}: install Debian's chromium "
                                       "package (or set $CHROMIUM) to run the browser tests")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """One headless Chromium for every browser test."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
