"""Limits of one upload request (bytes, files) and of what it stored (pixels, the visitor's disk share).

Used by ``ui.deploy.PublicGuard`` around Gradio's upload route: the request is counted while Gradio reads it
(cut off with 413 past a limit), and the stored files are checked from their headers before any handler or
Gradio preprocessing decodes them. Refused files are deleted again.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from ui.deploy import Refusal
from ui.limits import folder_bytes


class UploadCounter:
    """Counts the bytes and multipart parts of an upload as it streams in."""

    def __init__(self, scope: dict[str, Any], max_bytes: int, max_files: int) -> None:
        self.scope = scope
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.refusal: Refusal | None = None
        self.seen = 0
        self.parts = 0
        self.delimiter = b""
        for key, value in scope.get("headers", []):
            if key == b"content-type" and b"boundary=" in value:
                boundary = value.split(b"boundary=", 1)[1].split(b";", 1)[0].strip().strip(b'"')
                self.delimiter = b"--" + boundary
        self._tail = b""

    def _too_big(self) -> Refusal:
        return Refusal(413, f"This upload is over {self.max_bytes // 2**20} MB, the limit per request "
                            "(PORTRAIT_STUDIO_MAX_UPLOAD_REQUEST_MB). Upload fewer or smaller files.")

    def check_declared_length(self) -> None:
        for key, value in self.scope.get("headers", []):
            if key == b"content-length" and value.strip().isdigit() and int(value) > self.max_bytes:
                raise self._too_big()

    def _count(self, chunk: bytes) -> None:
        self.seen += len(chunk)
        if self.seen > self.max_bytes:
            self.refusal = self._too_big()
            return
        if self.delimiter:
            window = self._tail + chunk
            # A delimiter split across chunks is counted once: only matches that end in the new bytes count.
            start = 0
            while (found := window.find(self.delimiter, start)) >= 0:
                if found + len(self.delimiter) > len(self._tail):
                    self.parts += 1
                start = found + 1
            self._tail = window[-(len(self.delimiter) - 1):] if len(self.delimiter) > 1 else b""
            if self.parts - 1 > self.max_files:  # the closing delimiter is not a part
                self.refusal = Refusal(413, f"This upload has more than {self.max_files} files, the limit per "
                                            "request (PORTRAIT_STUDIO_MAX_UPLOAD_FILES).")

    def wrap(self, receive: Any) -> Any:
        async def counted() -> dict[str, Any]:
            if self.refusal is not None:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                self._count(message.get("body", b""))
                if self.refusal is not None:
                    return {"type": "http.disconnect"}  # Gradio stops reading; the guard answers 413
            return message

        return counted


def image_pixels(path: str) -> int | None:
    """Width x height from the file's header (nothing decoded); None for files that are not images."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except Image.DecompressionBombError as exc:  # Pillow refused at twice the cap (ui.deploy.harden_pillow)
        declared = re.search(r"\((\d+) pixels\)", str(exc))
        return int(declared.group(1)) if declared else 2**62
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    return width * height


def _delete(guard: Any, paths: list[str]) -> None:
    for path in paths:
        if guard.files.owners(path):  # the same bytes uploaded by someone else earlier: keep them
            continue
        try:
            os.remove(path)
            os.rmdir(os.path.dirname(path))
        except OSError:
            pass


def check_uploaded(guard: Any, paths: list[str], visitor: str, outputs: Path | None) -> None:
    """Refuse (and delete) an upload over the pixel cap or past the visitor's disk share."""
    settings = guard.settings
    if settings is None:
        return
    for path in paths:
        pixels = image_pixels(path)
        if pixels is not None and pixels > settings.max_image_pixels:
            _delete(guard, paths)
            shown = "over 2x the limit" if pixels >= 2**62 else f"{pixels / 1e6:.0f} megapixels"
            raise Refusal(413, f"{Path(path).name} is {shown}; the limit is {settings.max_image_pixels / 1e6:g} "
                               "megapixels per image (PORTRAIT_STUDIO_MAX_IMAGE_PIXELS).")
    new = sum(os.path.getsize(p) for p in paths if os.path.exists(p))
    used = guard.files.upload_bytes(visitor) + (folder_bytes(outputs) if outputs is not None else 0)
    limit = settings.max_disk_mb_per_visitor * 2**20
    if used + new > limit:
        _delete(guard, paths)
        raise Refusal(413, f"Your uploads and results would use {(used + new) / 2**20:.0f} MB; the limit per "
                           f"visitor is {settings.max_disk_mb_per_visitor} MB (PORTRAIT_STUDIO_MAX_DISK_MB_PER_VISITOR"
                           f"). Files are deleted after {settings.cleanup_after_hours:g} hours.")


def temp_files(cache_dir: str) -> set[str]:
    """Gradio's in-progress upload files: ``tmp*`` directly in its cache folder."""
    try:
        return {entry.path for entry in os.scandir(cache_dir) if entry.name.startswith("tmp") and entry.is_file()}
    except OSError:
        return set()


def remove_abandoned(cache_dir: str, before: set[str]) -> None:
    """After a refused upload: delete the temp files it left (new since it began and no longer open).

    Files another upload is still writing are open in this process and stay.
    """
    try:
        still_open = {os.path.realpath(os.path.join("/proc/self/fd", fd)) for fd in os.listdir("/proc/self/fd")}
    except OSError:
        return  # no /proc: leave them to the janitor
    for path in temp_files(cache_dir) - before:
        if os.path.realpath(path) not in still_open:
            try:
                os.remove(path)
            except OSError:
                pass
