"""The user's template set in <home>/templates: listing, loading by name, refusing paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from portrait_studio.config import Settings
from portrait_studio.errors import InputError
from portrait_studio.stylize.templates import list_templates, load_template, templates_dir


def test_templates_are_listed_and_loaded_by_name_only(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    assert list_templates(settings) == []
    folder = templates_dir(settings)
    folder.mkdir(parents=True)
    Image.new("RGB", (120, 90), (10, 200, 30)).save(folder / "beach.jpg")
    Image.new("RGBA", (80, 80), (0, 0, 0, 0)).save(folder / "clear.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes(b"")
    assert list_templates(settings) == ["beach.jpg", "clear.png"]
    beach = load_template(settings, "beach.jpg")
    assert beach.mode == "RGB" and beach.size == (120, 90)
    assert load_template(settings, "clear.png").getpixel((0, 0)) == (255, 255, 255)  # transparency on white
    for bad, expected in (("../secret.png", "not a template name"), ("/etc/passwd", "not a template name"),
                          (".hidden.png", "not a template name"), ("notes.txt", "No template named"),
                          ("gone.jpg", "Your templates: beach.jpg, clear.png")):
        with pytest.raises(InputError, match=expected):
            load_template(settings, bad)
