"""Jobs belong to the visitor, not the page: in Debian's chromium (Playwright), a reload during Stylize and
during training shows the running job again with its progress, Cancel stops it from the reloaded page, and
what a cancelled Stylize finished stays on the page. The "Your jobs" panel lists them (screenshot in
tests/artifacts/jobs-panel.png).

Its own page and module: independent of the chain in test_browser.py (it shares only the tiny app).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from tests.app.test_browser import CHROMIUM, SCREENSHOTS, browser_page, open_advanced, shot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def page(tiny_app):
    with browser_page(tiny_app.url, ready_tab="Stylize") as page:
        yield page


def reload(page) -> None:
    page.reload(wait_until="load")
    page.get_by_role("tab", name="Stylize").wait_for()


def test_reload_during_stylize_then_cancel_keeps_the_finished_images(page) -> None:
    page.get_by_role("tab", name="Stylize").click()
    page.locator("#stylize-prompt textarea").fill("studio portrait photo")
    page.locator("#stylize-images input[type=number]").fill("8")
    open_advanced(page, "stylize")
    page.locator("#stylize-steps input[type=number]").fill("15")
    assert not page.locator("#stylize-cancel").is_visible()  # nothing runs yet: no Cancel
    page.locator("#stylize-generate").click()
    page.locator("#stylize-cancel").wait_for(state="visible", timeout=60_000)
    # The second image has started, so the first is finished: reload now, while the job runs.
    page.locator("#stylize-job").get_by_text(re.compile(r"image [2-8]/8")).wait_for(timeout=600_000)
    reload(page)
    page.get_by_role("tab", name="Stylize").click()
    line = page.locator("#stylize-job")
    line.get_by_text("running", exact=False).first.wait_for(timeout=30_000)  # the reloaded page found the job
    assert line.locator("progress").count() == 1  # one bar for the job, with its phase
    assert re.search(r"image \d/8", line.inner_text())
    shot(page, "jobs-stylize-after-reload")
    page.locator("#stylize-cancel").click()
    # The final line, not the "cancelling…" one the job shows until its current step ends.
    line.get_by_text("finished before the cancel are kept", exact=False).first.wait_for(timeout=300_000)
    page.locator("#stylize-gallery img").first.wait_for(timeout=30_000)  # the finished images came back
    kept = page.locator("#stylize-gallery img").count()
    assert 1 <= kept < 8
    assert "Cancelled after" in page.locator("#stylize-notes").inner_text()
    page.locator("#stylize-cancel").wait_for(state="hidden", timeout=30_000)
    shot(page, "jobs-stylize-cancelled")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    from matplotlib import cbook

    folder = tmp_path_factory.mktemp("job_selfies")
    grace = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    variants = [grace, ImageOps.mirror(grace), grace.rotate(6, expand=False), grace.crop((20, 20, 500, 580)),
                grace.resize((400, 480))]
    paths = []
    for index, image in enumerate(variants):
        path = folder / f"selfie-{index}.jpg"
        image.save(path, quality=92)
        paths.append(path)
    return paths


def test_reload_during_training_then_cancel_from_the_reloaded_page(page, photos) -> None:
    page.get_by_role("tab", name="Train Likeness").click()
    page.locator("#train-photos input[type=file]").set_input_files([str(p) for p in photos])
    page.locator("#train-name").locator("input, textarea").first.fill("Reloaded")
    page.get_by_text("Quick", exact=True).click()
    page.locator("#train-steps input").fill("1000")
    page.locator("#train-consent input[type=checkbox]").check()
    page.locator("#train-start").click()
    status = page.locator("#train-status")
    status.get_by_text(re.compile(r"running · step [1-9]")).wait_for(timeout=600_000)
    reload(page)
    page.get_by_role("tab", name="Train Likeness").click()
    status.get_by_text("Reloaded", exact=False).first.wait_for(timeout=30_000)  # not "No training job yet."
    assert re.search(r"(running|queued).*step \d+/1000", status.inner_text())
    page.locator("#train-cancel").click()
    status.get_by_text("cancelled", exact=False).first.wait_for(timeout=300_000)  # the page follows: no freeze
    page.locator("#train-cancel").wait_for(state="hidden", timeout=15_000)
    shot(page, "jobs-training-cancelled")


def test_the_jobs_panel_lists_this_visitors_jobs(page) -> None:
    reload(page)
    page.locator("#jobs-panel").get_by_text("Your jobs").first.click()
    table = page.locator("#jobs-table")
    table.get_by_text("Training: Reloaded", exact=False).first.wait_for(timeout=30_000)
    text = table.inner_text()
    assert "Stylize" in text and "cancelled" in text and "Photo check" in text
    page.locator("#jobs-panel").scroll_into_view_if_needed()
    page.locator("#jobs-panel").screenshot(path=str(SCREENSHOTS / "jobs-panel.png"))
