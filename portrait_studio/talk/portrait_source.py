"""Which portrait Talk animates when the user gave an upload, a likeness, or both: the upload wins, and the
note says which one was used (a silent preference for the likeness surprised users)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from portrait_studio.errors import InputError


@dataclass
class PortraitChoice:
    image: Image.Image
    note: str


def choose_portrait(uploaded: Image.Image | None, likeness_name: str | None,
                    reference_path: Path | None) -> PortraitChoice:
    """``likeness_name``/``reference_path``: the chosen likeness and its reference face (None = none chosen)."""
    if isinstance(uploaded, Image.Image):
        if likeness_name:
            return PortraitChoice(uploaded, f"Used the uploaded portrait, not the reference face of likeness "
                                            f"'{likeness_name}' (clear the portrait to use the likeness).")
        return PortraitChoice(uploaded, "Used the uploaded portrait.")
    if likeness_name:
        if reference_path is None:
            raise InputError(f"Likeness '{likeness_name}' has no reference face; upload a portrait instead.")
        with Image.open(reference_path) as reference:
            image = reference.convert("RGB")
        return PortraitChoice(image, f"Used the reference face of likeness '{likeness_name}'.")
    raise InputError("Add a portrait (upload one, pick a likeness, or send one from Stylize/Animate).")
