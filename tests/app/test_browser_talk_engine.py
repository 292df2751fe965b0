"""The Talk tab's AniPortrait engine, in the browser: pick the engine, render, and the browser plays the MP4.

Its own page on the session's tiny app (independent of tests/app/test_browser.py's chain). Half a second of
audio and one denoising step keep it to a single 16-frame window on the tiny random models.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.app.test_browser import CHROMIUM, assert_video_plays, browser_page
from tests.talk._audio_helpers import tone, write_pcm_wav

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def page(tiny_app):
    with browser_page(tiny_app.url, ready_tab="Talk") as page:
        yield page


def test_aniportrait_engine_from_the_talk_tab_plays(page, tmp_path: Path) -> None:
    from matplotlib import cbook

    portrait = tmp_path / "grace.jpg"
    Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB").save(portrait)
    speech = write_pcm_wav(tmp_path / "speech.wav", tone(0.55, 16_000), 16_000)
    page.get_by_role("tab", name="Talk").click()
    page.locator("#talk-portrait input[type=file]").set_input_files(str(portrait))
    page.locator("#talk-audio input[type=file]").set_input_files(str(speech))
    page.locator("#talk-engine").get_by_text("AniPortrait (studio quality", exact=False).click()
    steps = page.locator("#talk-steps input[type=number]")
    if not steps.is_visible():
        page.locator("#talk-advanced").get_by_text("Advanced").first.click()
    steps.fill("1")
    page.wait_for_timeout(1000)
    page.locator("#talk-run").click()
    done = page.locator("#talk-notes").get_by_text("16 frames", exact=False)
    failed = page.locator(".toast-body.error, .toast-wrap .error")
    done.or_(failed).first.wait_for(timeout=600_000)  # diffusion on a shared CPU: give it time, fail on an error
    assert not failed.count(), failed.first.inner_text()
    assert_video_plays(page, "#talk-video")
    duration = page.locator("#talk-video video").first.evaluate("el => el.duration")
    assert abs(duration - 16 / 30) <= 1 / 30 + 0.05  # the browser's duration: the longer of the two tracks


def test_a_reference_video_that_is_no_video_is_refused_on_arrival(page, tmp_path: Path) -> None:
    fake = tmp_path / "holiday.mp4"
    fake.write_text("a shopping list")
    page.get_by_role("tab", name="Talk").click()
    box = page.locator("#talk-ref-video")
    if not box.is_visible():
        page.locator("#talk-advanced").get_by_text("Advanced").first.click()
    box.locator("input[type=file]").set_input_files(str(fake))
    status = page.locator("#talk-status-line")
    status.get_by_text("holiday.mp4 is not a readable video", exact=False).wait_for(timeout=20_000)
    assert "Upload refused" in status.inner_text() and "emptied" in status.inner_text()
    assert box.locator("video").count() == 0  # emptied: nothing left to play or to send
