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
