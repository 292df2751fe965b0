"""MP4 and GIF writing: browser-playable H.264, exact frame counts and rates, atomic writes, audio muxing."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from portrait_studio.errors import InputError
from portrait_studio.media.video import probe_video, write_gif, write_mp4


def _frames(count: int, height: int = 32, width: int = 48) -> list[np.ndarray]:
    return [np.full((height, width, 3), (i * 30) % 256, np.uint8) for i in range(count)]


def test_mp4_is_h264_yuv420p_with_exact_frames_and_fps(tmp_path: Path) -> None:
    path = write_mp4(_frames(10), tmp_path / "clip.mp4", fps=12)
    info = probe_video(path)
    assert (info.frames, info.fps, info.codec, info.pix_fmt) == (10, 12.0, "h264", "yuv420p")
    assert (info.width, info.height, info.has_audio) == (48, 32, False)
    data = path.read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat"), "+faststart puts the index before the media data"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_odd_sizes_are_padded_for_yuv420p(tmp_path: Path) -> None:
    info = probe_video(write_mp4(_frames(3, 33, 35), tmp_path / "odd.mp4", fps=8))
    assert (info.width, info.height, info.frames) == (36, 34, 3)


def test_audio_is_muxed_when_given(tmp_path: Path) -> None:
    audio = tmp_path / "tone.wav"
    with wave.open(str(audio), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes((np.sin(np.arange(16000) / 5) * 8000).astype("<i2").tobytes())
    info = probe_video(write_mp4(_frames(8), tmp_path / "talk.mp4", fps=8, audio_path=audio))
    assert info.has_audio and info.frames == 8


def test_gif_loops_at_the_frame_rate(tmp_path: Path) -> None:
    path = write_gif([Image.fromarray(f) for f in _frames(5)], tmp_path / "clip.gif", fps=10)
    with Image.open(path) as gif:
        assert gif.n_frames == 5 and gif.info["duration"] == 100 and gif.info["loop"] == 0


def test_bad_frames_raise_and_leave_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no frames"):
        write_mp4([], tmp_path / "empty.mp4", fps=8)
    with pytest.raises(InputError, match="same size"):
        write_mp4([np.zeros((8, 8, 3), np.uint8), np.zeros((16, 8, 3), np.uint8)], tmp_path / "mixed.mp4", fps=8)
    with pytest.raises(InputError, match="RGB"):
        write_gif([np.zeros((8, 8), np.uint8)], tmp_path / "gray.gif", fps=8)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="not a readable video"):
        (tmp_path / "fake.mp4").write_bytes(b"not a video")
        probe_video(tmp_path / "fake.mp4")
