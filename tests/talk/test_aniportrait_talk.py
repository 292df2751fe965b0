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


def test_cli_aniportrait_writes_mp4_with_audio_of_the_same_duration(
    tiny_settings: Settings, grace_hopper: Image.Image, tmp_path: Path, capsys
) -> None:
    portrait = tmp_path / "grace.png"
    grace_hopper.save(portrait)
    wav = write_pcm_wav(tmp_path / "speech.wav", tone(0.55, 16_000), 16_000)
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
