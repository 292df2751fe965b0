"""A person's view: Debian's chromium, driven by Playwright, clicks through every tab of the tiny-profile app.

It checks the photo report, generates a portrait, renders an animation and a talking head, and asserts the
browser can actually play both MP4s. Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from tests.conftest import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
SCREENSHOTS = REPO / "tests" / "artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (apt-get install chromium)"),
]


@contextmanager
def browser_page(url: str, ready_tab: str = "Stylize"):
    """Debian's chromium on ``url`` at a desktop size, once the ``ready_tab`` tab is there (one per module:
    Playwright's sync API does not nest)."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(url, wait_until="load")
            page.get_by_role("tab", name=ready_tab).wait_for()
            yield page
        finally:
            browser.close()


@pytest.fixture(scope="module")
def page(tiny_app):
    with browser_page(tiny_app.url, ready_tab="Stylize") as page:
        yield page


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    from matplotlib import cbook

    folder = tmp_path_factory.mktemp("selfies")
    grace = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    variants = [grace, ImageOps.mirror(grace), grace.rotate(6, expand=False), grace.crop((20, 20, 500, 580)),
                grace.resize((400, 480))]
    paths = []
    for index, image in enumerate(variants):
        path = folder / f"selfie-{index}.jpg"
        image.save(path, quality=92)
        paths.append(path)
    return paths


def open_advanced(page, tab: str) -> None:
    """Open a tab's "Advanced" accordion unless an earlier test left it open (a click would close it)."""
    steps = page.locator(f"#{tab}-steps input[type=number]")
    if not steps.is_visible():
        page.locator(f"#{tab}-advanced").get_by_text("Advanced").first.click()
    steps.wait_for(state="visible")


def generate_stylize(page) -> None:  # noqa: ANN001
    """Click Generate and wait for this click's results.

    Not "an image is in the gallery": the gallery may already hold an earlier test's result, or, on a page that
    just loaded, the owner's newest finished Stylize job (another module's, in one test session). So both the
    notes (a new run's "Seeds" line) and the first image must change; the notes alone arrive before the image.
    """
    before = page.evaluate(
        "() => [document.querySelector('#stylize-notes').innerText, "
        "document.querySelector('#stylize-gallery img')?.src ?? '']")
    page.locator("#stylize-generate").click()
    page.wait_for_function(
        "([notes, src]) => { const t = document.querySelector('#stylize-notes').innerText; "
        "const img = document.querySelector('#stylize-gallery img'); "
        "return t !== notes && t.includes('Seeds') && img && img.src && img.src !== src; }",
        arg=before, timeout=120_000)


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def assert_video_plays(page, selector: str) -> None:
    video = page.locator(f"{selector} video").first
    video.wait_for(timeout=180_000)
    page.wait_for_function(
        "el => el.readyState >= 2 && el.duration > 0", arg=video.element_handle(), timeout=60_000
    )
    assert video.evaluate("el => el.videoWidth") > 0


def test_every_tab_opens(page) -> None:
    tabs = page.get_by_role("tab")
    names = [tabs.nth(i).inner_text().strip() for i in range(tabs.count())]
    assert names == ["Train Likeness", "Stylize", "Animate", "Talk", "Library"]
    for name in names:
        page.get_by_role("tab", name=name).click()
        page.wait_for_timeout(300)
        shot(page, f"tab-{name.lower().replace(' ', '-')}")
    assert page.get_by_text("random weights", exact=False).first.is_visible()


def test_photo_check_shows_the_report(page, photos) -> None:
    page.get_by_role("tab", name="Train Likeness").click()
    page.locator("#train-photos input[type=file]").set_input_files([str(p) for p in photos])
    page.locator("#train-sheet img").wait_for(timeout=180_000)
    page.get_by_text("photos will be used", exact=False).wait_for(timeout=60_000)
    shot(page, "train-photo-check")


def test_instant_likeness_from_the_train_tab_then_stylize_with_it(page) -> None:
    # Continues from the photo check above: the selfies are in the upload box.
    page.locator("#train-name").locator("input, textarea").first.fill("Ada")
    page.locator("#train-consent input[type=checkbox]").check()
    page.locator("#train-instant").click()
    page.locator("#train-status").get_by_text("Instant likeness", exact=False).wait_for(timeout=180_000)
    shot(page, "train-instant-done")
    page.get_by_role("tab", name="Stylize").click()
    page.locator("#stylize-likeness input").click()
    page.get_by_role("option", name="Ada — instant").click()
    page.locator("#stylize-prompt textarea").fill("studio portrait photo")
    open_advanced(page, "stylize")
    page.locator("#stylize-steps input[type=number]").fill("2")
    generate_stylize(page)
    shot(page, "stylize-instant-result")
    assert "random" in page.locator("#stylize-notes").inner_text().lower()
    page.locator("#stylize-steps input[type=number]").fill("0")  # leave the tab as the next test expects it
    page.locator("#stylize-likeness input").click()
    page.get_by_role("option", name="(none)").click()
    page.get_by_role("tab", name="Train Likeness").click()


def test_training_from_the_ui_lands_in_the_library(page) -> None:
    # Continues from the photo check above: the same five selfies are still in the upload box.
    page.locator("#train-name").locator("input, textarea").first.fill("Grace")
    page.get_by_text("Quick", exact=True).click()
    page.locator("#train-steps input").fill("4")
    page.locator("#train-consent input[type=checkbox]").check()
    page.locator("#train-start").click()
    page.locator("#train-status").get_by_text("succeeded", exact=False).wait_for(timeout=300_000)
    shot(page, "train-done")
    page.get_by_role("tab", name="Library").click()
    page.locator("#library-gallery").get_by_text("Grace").first.wait_for(timeout=30_000)
    shot(page, "library-with-likeness")


def test_stylize_generates(page) -> None:
    page.get_by_role("tab", name="Stylize").click()
    page.locator("#stylize-prompt textarea").fill("studio portrait photo")
    open_advanced(page, "stylize")
    page.locator("#stylize-steps input[type=number]").fill("2")
    generate_stylize(page)
    shot(page, "stylize-result")
    assert "random" in page.locator("#stylize-notes").inner_text().lower()


def test_animate_produces_a_playable_mp4(page) -> None:
    page.get_by_role("tab", name="Animate").click()
    page.locator("#animate-prompt textarea").fill("smiling portrait")
    open_advanced(page, "animate")
    page.locator("#animate-steps input[type=number]").fill("2")
    page.locator("#animate-frames input[type=number]").fill("4")
    page.locator("#animate-run").click()
    assert_video_plays(page, "#animate-video")
    shot(page, "animate-result")


def test_animate_an_uploaded_portrait_with_sparsectrl_keyframes(page, photos) -> None:
    # Continues from the text animation above: wait for a *new* video, not the one already on the page.
    previous = page.locator("#animate-video video").first.get_attribute("src")
    page.locator("#animate-init input[type=file]").set_input_files(str(photos[0]))
    page.wait_for_timeout(1500)
    page.locator("#animate-portrait-mode").get_by_text("sparsectrl", exact=True).click()
    page.locator("#animate-run").click()
    page.wait_for_function(
        "prev => { const v = document.querySelector('#animate-video video'); return v && v.src && v.src !== prev; }",
        arg=previous, timeout=180_000,
    )
    assert_video_plays(page, "#animate-video")
    page.locator("#animate-notes").get_by_text("mode sparsectrl", exact=False).wait_for(timeout=30_000)
    shot(page, "animate-portrait-sparsectrl")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_talk_produces_a_playable_mp4(page, photos, tmp_path) -> None:
    speech = tmp_path / "hello.wav"
    subprocess.run(["espeak-ng", "-w", str(speech), "Hello from Portrait Studio."], check=True)
    page.get_by_role("tab", name="Talk").click()
    page.locator("#talk-portrait input[type=file]").set_input_files(str(photos[0]))
    page.locator("#talk-audio input[type=file]").set_input_files(str(speech))
    page.wait_for_timeout(1500)
    page.locator("#talk-run").click()
    assert_video_plays(page, "#talk-video")
    shot(page, "talk-result")
