"""Talk's portrait when both an upload and a likeness are set: the upload wins, and the note says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from portrait_studio.errors import InputError
from portrait_studio.talk.portrait_source import choose_portrait


def test_the_upload_wins_and_the_note_says_which_was_used(tmp_path: Path) -> None:
    uploaded = Image.new("RGB", (8, 8), (200, 0, 0))
    reference = tmp_path / "reference.png"
    Image.new("RGB", (8, 8), (0, 0, 200)).save(reference)
    both = choose_portrait(uploaded, "Ada", reference)
    assert both.image is uploaded
    assert both.note == ("Used the uploaded portrait, not the reference face of likeness 'Ada' (clear the portrait "
                         "to use the likeness).")
    only_likeness = choose_portrait(None, "Ada", reference)
    assert only_likeness.image.getpixel((0, 0)) == (0, 0, 200)
    assert only_likeness.note == "Used the reference face of likeness 'Ada'."
    assert choose_portrait(uploaded, None, None).note == "Used the uploaded portrait."
    with pytest.raises(InputError, match="has no reference face"):
        choose_portrait(None, "Imported", None)
    with pytest.raises(InputError, match="Add a portrait"):
        choose_portrait(None, None, None)
