"""Uploads checked on arrival: the reason in the services' words, and raw paths only from Gradio's upload folder."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from portrait_studio.config import Settings
from ui.upload_check import _files, image_problem


def test_a_renamed_text_file_gets_the_readers_reason(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    text = tmp_path / "notes.jpg"
    text.write_text("a shopping list")
    photo = tmp_path / "photo.png"
    Image.new("RGB", (80, 80), (10, 20, 30)).save(photo)
    assert image_problem(text, "notes.jpg", settings).startswith("notes.jpg is not an image we can read.")
    assert image_problem(photo, "photo.png", settings) is None


def test_only_files_in_gradios_upload_folder_are_looked_at(tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "gradio"
    (cache / "abc").mkdir(parents=True)
    inside = cache / "abc" / "upload.jpg"
    inside.write_bytes(b"x")
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"x")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    payload = [{"path": str(inside), "orig_name": "selfie.jpg"}, {"path": str(outside)},
               {"path": str(cache / "abc" / ".." / ".." / "secret.jpg")}, {"path": 3}, "junk"]
    assert _files(payload) == [(inside.resolve(), "selfie.jpg")]
    assert _files({"path": str(outside)}) == []


def test_reference_videos_are_checked_from_their_header(tmp_path: Path) -> None:
    import numpy as np

    from portrait_studio.media.video import write_mp4
    from ui.upload_check import video_problem

    settings = Settings(home=tmp_path / "home", max_audio_seconds=2.0)
    text = tmp_path / "holiday.mp4"
    text.write_text("a shopping list")
    clip = write_mp4([np.full((64, 64, 3), 90, np.uint8)] * 30, tmp_path / "clip.mp4", 30)
    long = write_mp4([np.full((64, 64, 3), 90, np.uint8)] * 120, tmp_path / "long.mp4", 30)
    assert video_problem(text, "holiday.mp4", settings).startswith("holiday.mp4 is not a readable video")
    assert video_problem(clip, "clip.mp4", settings) is None  # a face is looked for when the job runs
    assert "long.mp4 lasts 4 s; at most 2 s" in video_problem(long, "long.mp4", settings)
