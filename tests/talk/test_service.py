"""End to end on tiny random models: a real portrait, real synthesized speech, an MP4 with audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from portrait_studio.cli import main as cli_main
from portrait_studio.config import Settings
from portrait_studio.errors import CancelledError, InputError
from portrait_studio.media.audio import decode_audio
from portrait_studio.media.video import probe_video
from portrait_studio.progress import CancelToken
from portrait_studio.talk import TalkOptions, talk
from portrait_studio.talk.config import FPS
from tests.talk._audio_helpers import tone, write_pcm_wav
from tests.talk._reference_video import moving_face_video


def _assert_av_in_sync(path: Path, frames: int) -> None:
    info = probe_video(path)
    assert info.codec == "h264" and info.pix_fmt == "yuv420p" and info.has_audio
    assert info.frames == frames and info.fps == FPS
    audio = decode_audio(path, max_seconds=600)  # the muxed audio track, decoded back
    assert abs(audio.duration - frames / FPS) <= 1 / FPS
    assert abs(info.duration - audio.duration) <= 1 / FPS


def test_talk_end_to_end_with_head_motion(
    tiny_settings: Settings, tiny_manager, grace_hopper: Image.Image, speech_wav: Path, tmp_path: Path
) -> None:
    progress: list[float] = []
    out = tmp_path / "talk.mp4"
    result = talk(grace_hopper, speech_wav, out, tiny_settings, TalkOptions(pose_style=3),
                  manager=tiny_manager, progress=lambda f, m="": progress.append(f))
    speech = decode_audio(speech_wav, max_seconds=60)
    assert result.video_path == out and out.is_file()
    assert result.frames == int(speech.duration * FPS)
    assert result.random_weights and result.warnings
    _assert_av_in_sync(out, result.frames)
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert len(progress) >= result.frames  # a report per rendered frame
    assert not list(tmp_path.glob(".*"))  # no temp files left beside the output


def test_sadtalker_reference_video_gives_pose_and_blinks(
    tiny_settings: Settings, tiny_manager, grace_hopper: Image.Image, tmp_path: Path, monkeypatch
) -> None:
    from portrait_studio.talk import service

    seen: list[tuple[np.ndarray, np.ndarray, object]] = []
    original = service._motion_coefficients

    def spy(nets, mels, source, options, motion=None):
        coeffs = original(nets, mels, source, options, motion)
        seen.append((coeffs, source.coeffs, motion))
        return coeffs

    monkeypatch.setattr(service, "_motion_coefficients", spy)
    blinks: list[np.ndarray] = []
    predict_expression = service.predict_expression

    def blink_spy(net, mels, source_exp, blink):
        blinks.append(blink[0, :, 0].cpu().numpy())
        return predict_expression(net, mels, source_exp, blink)

    monkeypatch.setattr(service, "predict_expression", blink_spy)
    wav = write_pcm_wav(tmp_path / "speech.wav", tone(1.0, 16_000), 16_000)
    video = moving_face_video(grace_hopper, tmp_path / "ref.mp4")
    out = tmp_path / "ref_talk.mp4"
    result = talk(grace_hopper, wav, out, tiny_settings, TalkOptions(reference_video=video, still=True),
                  manager=tiny_manager)
    _assert_av_in_sync(out, result.frames)
    ((coeffs, source, motion),) = seen
    assert motion is not None and motion.poses.shape == (result.frames, 6) == (25, 6)
    # the portrait's own pose at the video's first frame, then the video's pose relative to it (still or not)
    assert np.allclose(coeffs[0, 64:70], source[64:70], atol=1e-6)
    assert np.allclose(coeffs[:, 64:70], source[None, 64:70] + motion.poses, atol=1e-5)
    assert np.abs(motion.poses).max() > 1e-4  # the face_3drecon of the moving frames differs from the first
    # the expression network's blink input is the video's (no blink in this photo), not SadTalker's random blinks
    assert np.array_equal(blinks[0], motion.blinks.astype(np.float32))
    rng = np.random.default_rng(0)  # what the service draws for seed 0: the pose seed, then the blinks
    rng.integers(0, 2**31 - 1)
    random_blinks = service.blink_ratios(25, rng)[:, 0]
    assert random_blinks.max() > 0 and not np.array_equal(blinks[0], random_blinks)


def test_talk_full_still_via_cli(
    tiny_settings: Settings, grace_hopper: Image.Image, speech_wav: Path, tmp_path: Path, capsys
) -> None:
    portrait = tmp_path / "grace.png"
    grace_hopper.save(portrait)
    out = tmp_path / "full.mp4"
    code = cli_main([
        "talk", "--portrait", str(portrait), "--audio", str(speech_wav), "--out", str(out), "--still",
        "--mode", "full", "--home", str(tiny_settings.home), "--profile", "tiny",
    ])
    assert code == 0, capsys.readouterr().err
    info = probe_video(out)
    assert (info.width, info.height) == grace_hopper.size  # pasted back into the whole portrait
    _assert_av_in_sync(out, info.frames)
    assert "random weights" in capsys.readouterr().out


def test_faceless_portrait_is_a_clear_input_error(tiny_settings: Settings, tiny_manager, tmp_path: Path) -> None:
    wav = write_pcm_wav(tmp_path / "tone.wav", tone(1.0, 16_000), 16_000)
    gradient = Image.fromarray(np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))).convert("RGB")
    with pytest.raises(InputError, match="No face was found"):
        talk(gradient, wav, tmp_path / "x.mp4", tiny_settings, manager=tiny_manager)
    assert not (tmp_path / "x.mp4").exists()


def test_cancel_stops_before_writing(tiny_settings: Settings, tiny_manager, grace_hopper: Image.Image,
                                     tmp_path: Path) -> None:
    wav = write_pcm_wav(tmp_path / "tone.wav", tone(1.0, 16_000), 16_000)
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        talk(grace_hopper, wav, tmp_path / "c.mp4", tiny_settings, manager=tiny_manager, cancel=token)
    assert not (tmp_path / "c.mp4").exists()


@pytest.mark.parametrize(
    "options,match",
    [
        (TalkOptions(size=384), "Renderer size 384"),
        (TalkOptions(mode="resize"), "Talk mode 'resize'"),
        (TalkOptions(pose_style=46), "Pose style 46"),
        (TalkOptions(expression_scale=-1), "Expression scale"),
        (TalkOptions(engine="wav2lip"), "Talk engine 'wav2lip'"),
        (TalkOptions(engine="aniportrait", steps=0), "Denoising steps 0"),
    ],
)
def test_bad_options(options: TalkOptions, match: str) -> None:
    with pytest.raises(InputError, match=match):
        options.validate()


def test_cli_bad_input_exits_2_with_one_line(tiny_settings: Settings, grace_hopper: Image.Image,
                                             tmp_path: Path, capsys) -> None:
    portrait = tmp_path / "grace.png"
    grace_hopper.save(portrait)
    silent = write_pcm_wav(tmp_path / "silent.wav", np.zeros(16_000, np.float32), 16_000)
    code = cli_main(["talk", "--portrait", str(portrait), "--audio", str(silent), "--out", str(tmp_path / "o.mp4"),
                     "--home", str(tiny_settings.home), "--profile", "tiny"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "silent" in err
