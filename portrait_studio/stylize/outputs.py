"""Saving Stylize results: one PNG per image (settings in its text chunk) and a zip for download-all."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from portrait_studio.errors import InputError
from portrait_studio.media.outputs import save_png
from portrait_studio.stylize.generate import GeneratedImage


def save_images(images: Sequence[GeneratedImage], out_dir: Path, stem: str = "stylize") -> list[Path]:
    """``<stem>-<seed>.png`` per image (``-<rank>`` added when ranked, so best-of files sort best first)."""
    out_dir = Path(out_dir)
    paths = []
    for item in images:
        rank = item.metadata.get("rank")
        name = f"{stem}-{rank:02d}-{item.seed}.png" if rank else f"{stem}-{item.seed}.png"
        paths.append(save_png(item.image, out_dir / name, item.metadata))
    return paths


def zip_outputs(paths: Sequence[Path], out_zip: Path) -> Path:
    """Pack ``paths`` (flat, by file name) into ``out_zip`` atomically: a temp file, then a rename."""
    files = [Path(p) for p in paths]
    if not files:
        raise InputError("There are no images to download yet.")
    missing = [p.name for p in files if not p.is_file()]
    if missing:
        raise InputError(f"These outputs no longer exist: {', '.join(missing)}. Generate them again.")
    names = [p.name for p in files]
    if len(set(names)) != len(names):
        raise InputError("Two outputs share a file name; they cannot go into one zip.")
    out_zip = Path(out_zip)
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_zip.parent, prefix=".", suffix=".zip")
    try:
        with os.fdopen(fd, "wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
            # PNGs are already compressed: storing them is as small and much faster.
            for path in files:
                archive.write(path, arcname=path.name)
        os.replace(tmp, out_zip)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_zip
