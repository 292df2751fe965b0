"""Acceptance on tiny random models: `talk --engine aniportrait` writes an H.264 MP4 whose video and audio
durations agree within one frame (30 fps). Half a second of audio keeps it to one 16-frame window."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from portrait_studio.cli import main as cli_main
from portrait_studio.config import Settings
from portrait_studio.media.audio import decode_audio
from portrait_studio.media.video import probe_video
from portrait_studio.talk.aniportrait.speech import FPS, frame_count
from tests.talk._audio_helpers import tone, write_pcm_wav
from tests.talk._reference_video import moving_face_video


def portrait_and_speech(grace_hopper: Image.Image, folder: Path) -> tuple[Path, Path]:
    """The portrait as a file and 0.55 s of tone as speech: one 16-frame window at 30 fps."""
    portrait = folder / "grace.png"
    grace_hopper.save(portrait)
    return portrait, write_pcm_wav(folder / "speech.wav", tone(0.55, 16_000), 16_000)


def test_cli_aniportrait_writes_mp4_with_audio_of_the_same_duration(
    tiny_settings: Settings, grace_hopper: Image.Image, tmp_path: Path, capsys
) -> None:
    portrait, wav = portrait_and_speech(grace_hopper, tmp_path)
    out = tmp_path / "t.mp4"
    code = cli_main([
        "talk", "--engine", "aniportrait", "--steps", "1", "--portrait", str(portrait), "--audio", str(wav),
        "--out", str(out), "--home", str(tiny_settings.home), "--profile", "tiny",
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    info = probe_video(out)
    assert info.codec == "h264" and info.pix_fmt == "yuv420p" and info.has_audio
    expected = frame_count(len(decode_audio(wav, max_seconds=60).samples))
    assert info.fps == FPS and info.frames == expected == 16
    assert info.width == 256  # the crop mode keeps the face box's aspect
    audio = decode_audio(out, max_seconds=60)  # the muxed track, decoded back
    assert abs(audio.duration - info.frames / FPS) <= 1 / FPS
    assert abs(info.duration - audio.duration) <= 1 / FPS
    assert "random weights" in captured.out
    assert not list(tmp_path.glob(".*"))  # no temp files beside the output


def test_cli_reference_video_drives_the_head_and_keeps_the_audio_length(
    tiny_settings: Settings, grace_hopper: Image.Image, tmp_path: Path, capsys, monkeypatch
) -> None:
    import numpy as np

    from portrait_studio.talk.aniportrait import engine

    calls: list[dict[str, np.ndarray]] = []
    original = engine.landmark_frames

    def spy(models, samples, points68, size, frames, still, style, expression_scale=1.0, motion=None):
        # the same models and inputs without the video: what audio2pose (and a still head) would have drawn
        args = (models, samples, points68, size, frames)
        calls.append({"video": original(*args, still, style, expression_scale, motion),
                      "speech": original(*args, False, style, expression_scale, None),
                      "still": original(*args, True, style, expression_scale, None), "motion": motion})
        return calls[-1]["video"]

    monkeypatch.setattr(engine, "landmark_frames", spy)
    portrait, wav = portrait_and_speech(grace_hopper, tmp_path)
    video = moving_face_video(grace_hopper, tmp_path / "ref.mp4")
    out = tmp_path / "t.mp4"
    code = cli_main([
        "talk", "--engine", "aniportrait", "--steps", "1", "--portrait", str(portrait), "--audio", str(wav),
        "--out", str(out), "--home", str(tiny_settings.home), "--profile", "tiny", "--ref-video", str(video),
        "--still",  # the video moves the head all the same
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (call,) = calls
    motion = call["motion"]
    assert motion is not None and motion.poses.shape == (16, 6)  # 10 video frames ping-ponged to 16
    assert np.abs(motion.poses[9, 3]) > 0.5  # moved sideways by cm, not by rounding
    assert not np.array_equal(call["video"], call["speech"])
    assert not np.array_equal(call["video"], call["still"])
    # the video's first frame is the portrait's own pose (and no blink there): the same drawing as a still head
    assert motion.blinks[0] == 0 and np.array_equal(call["video"][0], call["still"][0])
    info = probe_video(out)
    expected = frame_count(len(decode_audio(wav, max_seconds=60).samples))
    assert info.frames == expected == 16 and info.has_audio
    audio = decode_audio(out, max_seconds=60)
    assert abs(audio.duration - info.frames / FPS) <= 1 / FPS
    assert abs(info.duration - audio.duration) <= 1 / FPS


def test_cli_reference_video_that_is_no_video_is_refused_by_name(
    tiny_settings: Settings, grace_hopper: Image.Image, tmp_path: Path, capsys
) -> None:
    portrait, wav = portrait_and_speech(grace_hopper, tmp_path)
    fake = tmp_path / "notes.mp4"
    fake.write_text("a shopping list")
    args = ["talk", "--portrait", str(portrait), "--audio", str(wav), "--out", str(tmp_path / "t.mp4"),
            "--home", str(tiny_settings.home), "--profile", "tiny", "--ref-video", str(fake)]
    for engine in ("aniportrait", "sadtalker"):
        assert cli_main([*args, "--engine", engine, "--steps", "1"]) == 2
        assert "notes.mp4 is not a readable video" in capsys.readouterr().err
    assert not (tmp_path / "t.mp4").exists()
