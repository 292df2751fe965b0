"""A person's view: Debian's chromium, driven by Playwright, clicks through every tab and generates."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync",
]
SCREENSHOTS = REPO / "tests" / "artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def page(tiny_app):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(tiny_app.url, wait_until="networkidle")
        yield page
        browser.close()


def test_every_tab_opens_and_stylize_generates(page) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tabs = page.get_by_role("tab")
    names = [tabs.nth(i).inner_text().strip() for i in range(tabs.count())]
    assert "Stylize" in names
    for name in names:
        page.get_by_role("tab", name=name).click()
        page.wait_for_timeout(300)
        page.screenshot(path=str(SCREENSHOTS / f"tab-{name.lower().replace(' ', '-')}.png"))
    assert page.get_by_text("random weights", exact=False).first.is_visible()

    page.get_by_role("tab", name="Stylize").click()
    page.locator("#stylize-prompt textarea").fill("studio portrait photo")
    page.get_by_text("Advanced").first.click()
    page.locator("#stylize-steps input[type=number]").fill("2")
    page.locator("#stylize-generate").click()
    page.locator("#stylize-gallery img").first.wait_for(timeout=120_000)
    page.screenshot(path=str(SCREENSHOTS / "stylize-result.png"), full_page=True)
    assert page.locator("#stylize-notes").inner_text().count("random-weight") == 1
