"""ZeroGPU durations as a pure function of a request's size (portrait_studio.gpu_time)."""

from __future__ import annotations

import pytest

from portrait_studio import gpu_time as gt
from portrait_studio.errors import InputError


def test_small_requests_ask_for_the_floor_and_size_raises_the_ask() -> None:
    assert gt.stylize_request(1, 1, 64, 64).seconds == gt.FLOOR_SECONDS
    assert gt.anime_request().seconds == gt.FLOOR_SECONDS
    one = gt.animate_request(16, 25, 512, 512).seconds
    assert gt.animate_request(32, 25, 512, 512).seconds > one  # frames × steps
    assert gt.animate_request(16, 50, 512, 512).seconds > one
    assert gt.stylize_request(8, 50, 512, 512).seconds > gt.stylize_request(4, 50, 512, 512).seconds
    assert gt.talk_request(30).seconds > gt.talk_request(10).seconds  # seconds of audio


def test_the_ask_is_the_unit_costs_times_the_margin() -> None:
    # 16 frames x 25 steps at 512 px: the sum of the constants written next to the function, rounded up.
    raw = gt.FIXED_SECONDS + 16 * (25 * gt.MOTION_FRAME_STEP_SECONDS + gt.VAE_DECODE_SECONDS
                                   + gt.FRAME_WRITE_SECONDS)
    assert gt.animate_request(16, 25, 512, 512).seconds == -(-raw * gt.MARGIN // 1)
    raw = gt.TALK_FIXED_SECONDS + 20 * (gt.TALK_AUDIO_SECOND_256 * gt.TALK_512_FACTOR + gt.TALK_ENHANCE_AUDIO_SECOND)
    assert gt.talk_request(20, 512, enhance=True).seconds == -(-raw * gt.MARGIN // 1)


def test_default_settings_stay_within_a_minute() -> None:
    # The defaults of each tab: one image at a preset's 30 steps; 16 frames x 25 steps; a 30 s clip at 256 px.
    asks = {
        "stylize": gt.stylize_request(1, 30, 512, 512).seconds,
        "stylize template": gt.stylize_request(1, 30, 512, 512, template=True, control=True).seconds,
        "animate": gt.animate_request(16, 25, 512, 512).seconds,
        "talk (30 s of speech)": gt.talk_request(30.0).seconds,
        "photo check (20 photos)": gt.photo_check_request(20).seconds,
        "anime": gt.anime_request().seconds,
    }
    assert max(asks.values()) <= gt.DEFAULT_REQUEST_TARGET, asks
    assert gt.longest_speech_within(gt.DEFAULT_REQUEST_TARGET) >= 30


@pytest.mark.parametrize(
    ("make", "setting"),
    [
        (lambda: gt.stylize_request(8, 100, 1024, 1024, template=True, control=True), "Images, Steps"),
        (lambda: gt.animate_request(64, 60, 512, 512), "Frames or Steps"),
        (lambda: gt.talk_request(60.0, 512, enhance=True, full=True), "renderer size"),
        (lambda: gt.talk_request(10.0, 256, engine="aniportrait", steps=25), "choose SadTalker"),
    ],
)
def test_requests_over_the_cap_are_refused_with_the_reason_and_the_setting(make, setting) -> None:
    with pytest.raises(InputError) as caught:
        make()
    message = str(caught.value)
    assert f"at most {gt.MAX_CALL_SECONDS} s" in message and setting in message
    assert int(message.split("needs about ")[1].split(" s")[0]) > gt.MAX_CALL_SECONDS


def test_nothing_below_the_cap_is_refused_and_nothing_asks_above_it() -> None:
    for frames in range(2, 65, 2):
        for steps in (1, 10, 25, 40, 60):
            try:
                seconds = gt.animate_request(frames, steps, 512, 512).seconds
            except InputError:
                continue
            assert gt.FLOOR_SECONDS <= seconds <= gt.MAX_CALL_SECONDS


def test_aniportrait_is_priced_by_frames_times_steps() -> None:
    # Video diffusion at 30 fps costs far more than SadTalker's warping renderer for the same speech, and
    # its ask grows with the denoising steps; two seconds at few steps still fit one call.
    short = gt.talk_request(2.0, 256, engine="aniportrait", steps=10).seconds
    assert short > gt.talk_request(2.0, 256).seconds
    assert gt.talk_request(2.0, 256, engine="aniportrait", steps=20).seconds > short
    assert short <= gt.MAX_CALL_SECONDS


def test_a_reference_video_adds_its_face_detection_per_frame() -> None:
    # dlib runs on every frame of the reference video inside the call: 10 s of speech = 300 frames.
    plain = gt.talk_request(10.0, 256, engine="aniportrait", steps=4)
    with_video = gt.talk_request(10.0, 256, engine="aniportrait", steps=4, reference_video=True)
    raw_extra = 10.0 * gt.ANIPORTRAIT_FPS * gt.REFERENCE_FRAME_SECONDS
    assert abs(with_video.seconds - plain.seconds - raw_extra * gt.MARGIN) <= 1  # ceil of each ask
    sadtalker, sadtalker_video = (gt.talk_request(10.0, 256, reference_video=r).seconds for r in (False, True))
    assert abs(sadtalker_video - sadtalker - 10.0 * gt.SADTALKER_FPS * gt.REFERENCE_FRAME_SECONDS * gt.MARGIN) <= 1
