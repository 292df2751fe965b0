"""Reading videos back: the header alone, and frames at a chosen rate, size cap and length."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from portrait_studio.errors import InputError
from portrait_studio.media.video import probe_video, read_frames, read_header, write_mp4
from tests.talk._audio_helpers import tone, write_pcm_wav


@pytest.fixture(scope="module")
def ramp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One second at 24 fps, 150 x 100, each frame 10 grey levels brighter than the last."""
    frames = [np.full((100, 150, 3), 10 * i, np.uint8) for i in range(24)]
    return write_mp4(frames, tmp_path_factory.mktemp("video") / "ramp.mp4", 24)


def test_header_without_decoding(ramp: Path) -> None:
    header = read_header(ramp)
    assert (header.width, header.height, header.fps) == (150, 100, 24.0)
    assert header.duration == pytest.approx(1.0, abs=0.05)


def test_frames_at_another_rate_and_a_size_cap(ramp: Path) -> None:
    frames = list(read_frames(ramp, fps=30, max_side=80))
    assert len(frames) == 30  # one second at 30 fps: ffmpeg repeats every fourth frame
    assert frames[0].shape == (54, 80, 3) and frames[0].dtype == np.uint8  # long side 80, even sizes
    levels = [float(f.mean()) for f in frames]
    assert levels == sorted(levels) and levels[-1] > 200  # in order, to the end
    assert len(list(read_frames(ramp, fps=30, max_side=800, seconds=0.5))) == 15  # the rest is not read
    assert next(iter(read_frames(ramp, fps=30, max_side=800))).shape == (100, 150, 3)  # never scaled up


def test_files_that_are_no_video_are_named(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("a shopping list")
    speech = write_pcm_wav(tmp_path / "speech.wav", tone(0.3, 16_000), 16_000)
    for path in (text, speech):
        for read in (read_header, probe_video):  # one header reader under both: the same refusals
            with pytest.raises(InputError, match=f"{path.name} is not a readable video"):
                read(path)
    with pytest.raises(InputError, match="gone.mp4 not found"):
        list(read_frames(tmp_path / "gone.mp4", fps=30, max_side=80))
