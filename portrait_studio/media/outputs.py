"""Writing generated images: PNG with settings in text chunks, an AI-generated label, no EXIF."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

AI_LABEL = "AI-generated with Portrait Studio"


def png_info(metadata: dict[str, Any]) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "Portrait Studio")
    info.add_text("Comment", AI_LABEL)
    info.add_text("ai_generated", "true")
    info.add_text("parameters", json.dumps(metadata, sort_keys=True, default=str))
    return info


def save_png(image: Image.Image, path: Path, metadata: dict[str, Any]) -> Path:
    """Write ``image`` atomically (temp file + rename) with ``metadata`` as a JSON text chunk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".png")
    try:
        with os.fdopen(fd, "wb") as handle:
            image.convert("RGB").save(handle, format="PNG", pnginfo=png_info(metadata))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_png_metadata(path: Path) -> dict[str, Any]:
    with Image.open(path) as image:
        raw = image.text.get("parameters") if hasattr(image, "text") else None
    return json.loads(raw) if raw else {}
