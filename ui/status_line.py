"""A status line beside a tab's main button that keeps the last error in plain words.

Gradio shows a user error as a toast that fades. ``StatusLine.track(handler)`` remembers the message of a
``gr.Error`` the handler raises (per browser session), and ``StatusLine.follow(event, done)`` writes it into
the line when the event fails (``event.failure``), or the ``done`` text when it succeeds; the line keeps it
until the next run. The handler still raises, so API clients see the same error as before.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import gradio as gr

from ui.common import session_key
from ui.widgets import as_text

UNREADABLE = ("The input could not be read. Check the boxes above: an image must be a photo file (JPEG, PNG, "
              "WebP or HEIC).")


def error_text(message: str) -> str:
    return f"⚠️ **Could not run:** {as_text(message)}"


def _request_of(args: tuple, kwargs: dict) -> gr.Request | None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, gr.Request):
            return value
    return None


class StatusLine:
    def __init__(self, elem_id: str, text: str = "") -> None:
        self.markdown = gr.Markdown(text, elem_id=elem_id, elem_classes=["status-line"])
        self._last: dict[str, str] = {}
        self._lock = threading.Lock()

    def track(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` with its user errors remembered for this session (``fn`` must take a ``gr.Request``)."""

        @functools.wraps(fn)
        def handler(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except gr.Error as exc:
                with self._lock:
                    self._last[session_key(_request_of(args, kwargs))] = str(exc.message)
                raise

        return handler

    def follow(self, event: Any, done: str | Callable[..., str] = "", inputs: list | None = None) -> None:
        """Show ``done`` (text, or a function of ``inputs``) after success, the error after failure. Tabs with a
        job line leave ``done`` empty: that line already says "done", so success only clears an old error."""

        def on_success(*values: Any) -> str:
            return done(*values) if callable(done) else done

        def on_failure(request: gr.Request) -> str:
            with self._lock:
                message = self._last.pop(session_key(request), None)
            return error_text(message or UNREADABLE)

        event.success(on_success, inputs or None, [self.markdown], api_name=False, show_progress="hidden")
        event.failure(on_failure, None, [self.markdown], api_name=False, show_progress="hidden")
