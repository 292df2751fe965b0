"""The user's template photos: image files in ``<home>/templates`` (we ship none; users add their own)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from portrait_studio.config import Settings
from portrait_studio.errors import InputError
from portrait_studio.media.images import load_image

TEMPLATE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".avif")


def templates_dir(settings: Settings) -> Path:
    return settings.home / "templates"


def list_templates(settings: Settings) -> list[str]:
    """File names of the template set, sorted (the UI shows them; :func:`load_template` takes them)."""
    folder = templates_dir(settings)
    if not folder.is_dir():
        return []
    return sorted(
        p.name for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in TEMPLATE_SUFFIXES
    )


def load_template(settings: Settings, name: str) -> Image.Image:
    """A template from the set by file name (never a path: names from a browser are not trusted)."""
    wanted = str(name).strip()
    if not wanted or Path(wanted).name != wanted or wanted.startswith("."):
        raise InputError(f"'{wanted[:80]}' is not a template name. Choose one of your templates.")
    if wanted not in list_templates(settings):
        known = ", ".join(list_templates(settings)) or f"none yet (add photos to {templates_dir(settings)})"
        raise InputError(f"No template named '{wanted[:80]}'. Your templates: {known}.")
    return load_template_file(settings, templates_dir(settings) / wanted)


def load_template_file(settings: Settings, path: Path) -> Image.Image:
    """Decode a template photo (EXIF orientation applied, RGB) under the upload limits."""
    loaded = load_image(
        Path(path), max_pixels=settings.max_image_pixels, max_bytes=settings.max_upload_mb * 1024 * 1024
    )
    return loaded.image
