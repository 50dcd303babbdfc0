"""Debian's Chromium driven by Playwright for Python (never `playwright install`: it downloads a browser).

`make setup` installs the apt package `chromium` when root. Screenshots go to tmp/artifacts/ (not
committed); with QR_DOCS_SCREENSHOTS=1 the ones the README shows are written to docs/ as well.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.paths import ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces it does not get
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "tmp" / "artifacts" / "web"
DOCS = ROOT / "docs"

if TYPE_CHECKING:  # Playwright is imported when a browser starts, not when tests are collected
    from playwright.sync_api import Browser, Page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: run `make setup` (it installs the apt package chromium when root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def screenshot(page: Page, name: str, *, docs: bool = False) -> Path:
    """A full-page PNG under tmp/artifacts/web/ (and docs/ when asked and QR_DOCS_SCREENSHOTS=1)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"
    page.screenshot(path=str(path), full_page=True)
    if docs and os.environ.get("QR_DOCS_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(path, DOCS / f"web-{path.name}")
    return path
