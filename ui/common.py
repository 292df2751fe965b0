"""Shared UI plumbing: error mapping, progress adapters, per-session cancel tokens, status lines."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr

from portrait_studio.errors import PortraitStudioError
from portrait_studio.progress import CancelToken, ProgressFn
from portrait_studio.services import LOCAL_OWNER, Services, owner_id

log = logging.getLogger(__name__)
T = TypeVar("T")

TINY_BANNER = (
    "**Tiny profile:** every model here has random weights, for tests and for trying the flow. "
    "Outputs are noise, not results. Start with `--profile default` after `python -m portrait_studio download`."
)


def call_service(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a backend call; user errors become ``gr.Error`` with their message, bugs a short generic one."""
    try:
        return fn(*args, **kwargs)
    except PortraitStudioError as exc:
        raise gr.Error(str(exc), print_exception=False) from exc
    except gr.Error:
        raise
    except Exception as exc:  # a bug: log the traceback on the server, show no traceback to the user
        log.exception("unexpected error in %s", getattr(fn, "__name__", fn))
        raise gr.Error(
            f"Something went wrong on our side ({type(exc).__name__}). The details are in the server log.",
            print_exception=False,
        ) from exc


def progress_fn(progress: gr.Progress) -> ProgressFn:
    def report(fraction: float, message: str = "") -> None:
        progress(min(max(fraction, 0.0), 1.0), desc=message or None)

    return report


class CancelTokens:
    """One live token per (session, task); the Cancel button trips it, the job stops within one step."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], CancelToken] = {}
        self._lock = threading.Lock()

    def start(self, session: str, task: str) -> CancelToken:
        token = CancelToken()
        with self._lock:
            self._tokens[(session, task)] = token
        return token

    def cancel(self, session: str, task: str) -> bool:
        with self._lock:
            token = self._tokens.get((session, task))
        if token is None:
            return False
        token.cancel()
        return True

    def finish(self, session: str, task: str, token: CancelToken) -> None:
        with self._lock:
            if self._tokens.get((session, task)) is token:
                del self._tokens[(session, task)]


def session_key(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "anonymous"


def request_owner(services: Services, request: gr.Request | None) -> str:
    """Locally there is one owner; public deployments key everything by login or browser session."""
    if not getattr(services.settings, "public", False) or request is None:
        return LOCAL_OWNER
    user = getattr(request, "username", None)
    return owner_id(f"user:{user}" if user else f"session:{session_key(request)}")


def missing_markdown(services: Services, roles: list[str]) -> str:
    problems = services.missing_weights(roles)
    if not problems:
        return ""
    lines = [f"- {exc}" for exc in problems]
    return "**Missing model weights** — this tab will explain the same when you run it:\n" + "\n".join(lines)
