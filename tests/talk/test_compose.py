"""Frame composition: aspect restore, seamless paste-back, per-frame enhancement hook."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from portrait_studio.progress import CancelToken
from portrait_studio.talk import compose
from portrait_studio.talk.preprocess import CropBox


def test_paste_back_changes_only_the_box() -> None:
    portrait = Image.new("RGB", (120, 100), (10, 20, 30))
    box = CropBox(30, 20, 94, 84)
    rendered = [np.full((32, 32, 3), 250, np.uint8)]
    frame = next(compose.finish_frames(rendered, portrait, box, "full"))
    assert frame.shape == (100, 120, 3)
    assert (frame[:20] == (10, 20, 30)).all() and (frame[:, 94:] == (10, 20, 30)).all()
    assert (frame[52, 62] == 250).all()  # centre of the box is the rendered face
    assert 10 < frame[20 + 2, 62, 0] < 250  # the edge is feathered, not a hard seam


def test_crop_mode_restores_the_crop_aspect() -> None:
    rendered = [np.zeros((64, 64, 3), np.uint8)] * 2
    frames = list(compose.finish_frames(rendered, Image.new("RGB", (10, 10)), CropBox(0, 0, 100, 150), "crop"))
    assert len(frames) == 2 and frames[0].shape == (96, 64, 3)


def test_enhancement_runs_per_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    from portrait_studio.faces import restore

    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(restore, "restore_faces", lambda image, settings: calls.append(image.size) or image)
    progress: list[float] = []
    frames = [np.zeros((8, 8, 3), np.uint8)] * 3
    out = list(compose.enhance_frames(iter(frames), 3, None, lambda f, m="": progress.append(f), CancelToken()))
    assert len(out) == 3 and calls == [(8, 8)] * 3 and progress[-1] == 1.0
