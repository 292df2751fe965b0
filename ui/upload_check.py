"""Uploads checked on arrival: a file that is not a usable image is refused at once, with the reason.

Gradio decodes an image box's file only when a handler runs, and a broken one then fails with a bare
"Error". ``check_on_arrival(box, status, settings)`` listens to the box's upload without Gradio's
preprocessing, decodes the file with the backend's own reader (``media.images.load_image``: the same
rules and words as every service), clears the box when it cannot be used and says why in the tab's
status line. Works for image boxes, file boxes (one or many files) and video boxes (``video_problem``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from portrait_studio.config import Settings
from portrait_studio.errors import InputError
from portrait_studio.media.images import load_image
from ui.widgets import as_text


def _files(payload: Any) -> list[tuple[Path, str]]:
    """The uploaded files of a raw payload. Without Gradio's preprocessing nobody else checks the paths: only
    files inside Gradio's upload folder count (a client-supplied path elsewhere is ignored, never opened)."""
    from gradio.utils import get_upload_folder

    cache = Path(get_upload_folder()).resolve()
    items = payload if isinstance(payload, list) else [payload]
    found = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            path = Path(item["path"]).resolve()
            if path.is_relative_to(cache) and path.is_file():
                found.append((path, str(item.get("orig_name") or path.name)))
    return found


def image_problem(path: Path, name: str, settings: Settings) -> str | None:
    """Why this file cannot be used as an image, in the words the services use, or None."""
    try:
        load_image(path, name=name, max_pixels=settings.max_image_pixels,
                   max_bytes=settings.max_upload_mb * 1024 * 1024, min_short_side=64)
    except InputError as exc:
        return str(exc)
    return None


def video_problem(path: Path, name: str, settings: Settings) -> str | None:
    """Why this file cannot be a reference video (unreadable, too large, too long), or None. Only the header is
    read: whether it shows a face is found when the job runs."""
    from portrait_studio.talk.reference_motion import check_reference_video

    try:
        check_reference_video(path, settings, name)
    except InputError as exc:
        return str(exc)
    return None


Problem = Callable[[Path, str, Settings], str | None]


def check_on_arrival(box: gr.components.Component, status: gr.Markdown, settings: Settings,
                     clear: bool = True, problem: Problem = image_problem) -> None:
    """Wire ``box.upload``: refuse what ``problem`` finds unusable (``clear``: empty the box), say why in
    ``status``. ``problem`` is ``image_problem`` (default) or ``video_problem``."""

    def arrived(payload: Any):
        files = _files(payload)
        if not files:
            return gr.skip(), gr.skip()
        problems = [p for path, name in files if (p := problem(path, name, settings))]
        if not problems:
            names = ", ".join(name for _, name in files[:3]) + (" …" if len(files) > 3 else "")
            return gr.skip(), f"Received {as_text(names)}."
        refused = f"⚠️ **Upload refused:** {as_text(' '.join(problems))}"
        if clear:
            return None, refused + " The box was emptied."
        return gr.skip(), refused

    box.upload(arrived, [box], [box, status], preprocess=False, api_name=False, show_progress="hidden")
