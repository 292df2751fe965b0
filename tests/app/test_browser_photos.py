"""The photo rule, errors that stay and missing weights, seen in Debian's chromium (Playwright).

A module of its own (its own page) so the chain in test_browser.py is unaffected. Screenshots of every tab
in both profiles (tiny, and default without weights) land in tests/artifacts/.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance, ImageOps

from tests.app.test_browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (apt-get install chromium)"),
]
TABS = ["Train Likeness", "Stylize", "Animate", "Talk", "Library"]


def _open(playwright, url: str):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(60_000)
    page.goto(url, wait_until="load")
    page.get_by_role("tab", name="Stylize").wait_for()
    return browser, page


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as instance:  # one per module: Playwright's sync API does not nest
        yield instance


@pytest.fixture(scope="module")
def page(playwright, tiny_app):
    browser, page = _open(playwright, tiny_app.url)
    yield page
    browser.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    from matplotlib import cbook

    folder = tmp_path_factory.mktemp("uploads")
    grace = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    good = [grace, ImageOps.mirror(grace), grace.rotate(6, fillcolor=(255, 255, 255)), grace.crop((20, 20, 500, 580)),
            ImageEnhance.Brightness(grace).enhance(0.7)]
    found = {}
    for index, image in enumerate(good):
        found[f"good{index}"] = folder / f"selfie-{index}.jpg"
        image.save(found[f"good{index}"], quality=90)
    found["text"] = folder / "notes.jpg"
    found["text"].write_text("a shopping list, renamed to .jpg")
    found["wall"] = folder / "wall.png"
    Image.new("RGB", (320, 320), (120, 140, 160)).save(found["wall"])
    return found


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def upload_selfies(page, paths: list[Path]) -> None:
    page.get_by_role("tab", name="Train Likeness").click()
    clear = page.locator("#train-photos button[aria-label=Clear]")
    if clear.count() and clear.first.is_visible():  # a new upload adds to the files already in the box
        clear.first.click()
        page.wait_for_function("() => document.querySelectorAll('#train-thumbs img').length === 0")
    page.locator("#train-photos input[type=file]").set_input_files([str(p) for p in paths])


def test_a_renamed_text_file_is_refused_on_arrival_with_the_reason(page, files) -> None:
    # Every image box of the tabs (Train's photo box has its own tests below); the accordion a box sits in.
    for tab, box, line, section in (
        ("Talk", "#talk-portrait", "#talk-status-line", None),
        ("Animate", "#animate-init", "#animate-status-line", None),
        ("Animate", "#animate-end", "#animate-status-line", None),
        ("Stylize", "#stylize-template-upload", "#stylize-status-line",
         "Template portrait: put the likeness into a photo"),
        ("Stylize", "#anime-input", "#anime-status-line", "Photo to anime (AnimeGANv2)"),
    ):
        page.get_by_role("tab", name=tab).click()
        if section and not page.locator(f"{box} input[type=file]").count():
            page.get_by_text(section).click()
        # A name of its own per box: two boxes share Animate's status line, whose last message must be this one.
        renamed = files["text"].with_name(f"notes-{box.strip('#')}.jpg")
        shutil.copyfile(files["text"], renamed)
        page.locator(f"{box} input[type=file]").set_input_files(str(renamed))
        status = page.locator(line)
        status.get_by_text(f"{renamed.name} is not an image we can read", exact=False).wait_for(timeout=20_000)
        assert "Upload refused" in status.inner_text() and "emptied" in status.inner_text()
        # the box is emptied by the same answer (its picture may leave the page a moment after the words)
        page.wait_for_function("box => !document.querySelector(box + ' img')", arg=box, timeout=10_000)
    shot(page, "photos-refused-on-arrival")


def test_check_then_train_with_four_photos_says_the_same_thing(page, files) -> None:
    upload_selfies(page, [files[f"good{i}"] for i in range(4)])
    notes = page.locator("#train-check-notes")
    notes.get_by_text("4 of 4 photos usable for training (5–20 photos needed)", exact=False).wait_for(timeout=180_000)
    assert "Add at least 1 more photo" in notes.inner_text()
    assert page.locator("#train-photos").get_by_text("Selfies (5–20 photos)").count() == 1
    assert page.locator("#train-thumbs img").count() == 4  # thumbnails, not file names
    page.locator("#train-name").locator("input, textarea").first.fill("Four")
    page.locator("#train-consent input[type=checkbox]").check()
    page.locator("#train-start").click()
    line = page.locator("#train-status-line")
    line.get_by_text("Training needs 5–20 photos of one person; 4 usable", exact=False).wait_for(timeout=30_000)
    # No job was made (the status shows the visitor's newest training job, from an earlier test if any).
    assert "Four" not in page.locator("#train-status").inner_text()
    shot(page, "train-four-photos")


def test_check_then_train_with_bad_files_trains_on_what_the_check_kept(page, files) -> None:
    upload_selfies(page, [files["text"], *[files[f"good{i}"] for i in range(5)], files["wall"]])
    line = page.locator("#train-status-line")
    line.get_by_text("notes.jpg is not an image we can read", exact=False).wait_for(timeout=20_000)  # at once
    notes = page.locator("#train-check-notes")
    notes.get_by_text("5 of 7 photos usable for training", exact=False).wait_for(timeout=180_000)
    assert "too similar" in notes.inner_text()  # five copies of one photo
    verdicts = page.locator("#train-verdicts").inner_text()
    assert "no face found" in verdicts and "not an image we can read" in verdicts
    shot(page, "train-check-bad-files")
    page.locator("#train-remove-rejected").click()
    line.get_by_text("Removed 2 rejected photo(s). 5 of 5 photos usable", exact=False).wait_for(timeout=30_000)
    page.wait_for_function("() => document.querySelectorAll('#train-thumbs img').length === 5")
    page.locator("#train-name").locator("input, textarea").first.fill("Kept five")
    page.get_by_text("Quick", exact=True).click()
    page.locator("#train-steps input").fill("2")
    page.locator("#train-consent input[type=checkbox]").check()
    page.locator("#train-start").click()
    try:
        page.locator("#train-status").get_by_text("Training on 5 photos (those the check kept)",
                                                  exact=False).wait_for(timeout=180_000)
    except Exception as exc:
        shot(page, "train-started-failed")
        raise AssertionError(f"status line: {line.inner_text()}") from exc
    assert page.locator("#train-start").is_disabled()  # no second job for this likeness while it runs
    shot(page, "train-started-from-the-verdict")
    page.get_by_role("button", name="Cancel training").click()
    page.locator("#train-status").get_by_text(re.compile("cancelled|succeeded")).wait_for(timeout=120_000)
    page.wait_for_function("() => !document.querySelector('#train-start').disabled", timeout=30_000)


def test_screenshots_of_every_tab_tiny(page) -> None:
    for name in TABS:
        page.get_by_role("tab", name=name).click()
        page.wait_for_timeout(300)
        shot(page, f"photos-tiny-tab-{name.lower().replace(' ', '-')}")


def test_without_weights_actions_are_off_with_the_reason_and_every_tab_is_shot(playwright,
                                                                                offline_default_app) -> None:
    if True:
        browser, page = _open(playwright, offline_default_app.url)
        try:
            expectations = {"Train Likeness": ["#train-start", "#train-instant"], "Stylize": ["#stylize-generate"],
                            "Animate": ["#animate-run"], "Talk": ["#talk-run"], "Library": []}
            for name, buttons in expectations.items():
                page.get_by_role("tab", name=name).click()
                page.wait_for_timeout(300)
                for button in buttons:
                    assert page.locator(button).is_disabled(), button
                if buttons:
                    panel = page.get_by_role("tabpanel")
                    assert "is switched off" in panel.inner_text()
                shot(page, f"photos-offline-tab-{name.lower().replace(' ', '-')}")
            page.get_by_role("tab", name="Train Likeness").click()
            assert page.locator("#train-check").is_enabled()  # the dlib face models ship in a wheel
            text = page.get_by_role("tabpanel").inner_text()
            assert "ip_adapter_face" in text and "base" in text
        finally:
            browser.close()
