"""Shared UI plumbing: error mapping, progress adapters, per-session cancel tokens, who the visitor is."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr
from PIL import Image

from portrait_studio import faults, progress
from portrait_studio.errors import PortraitStudioError
from portrait_studio.progress import CancelToken, ProgressFn
from portrait_studio.services import LOCAL_OWNER, Services, owner_id
from portrait_studio.visitor_jobs import current_token, report_current

log = logging.getLogger(__name__)
T = TypeVar("T")

# The per-browser visitor id on public deployments (set by ui.deploy.PublicGuard): random, 43 url-safe chars.
VISITOR_COOKIE = "ps_visitor"
VISITOR_ID_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")

TINY_BANNER = (
    "**Tiny profile:** every model here has random weights, for tests and for trying the flow. "
    "Outputs are noise, not results. Start with `--profile default` after `python -m portrait_studio download`."
)


def call_service(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a backend call; user errors become ``gr.Error`` with their message, bugs a short generic one.

    This is the one place where a device out-of-memory becomes a user error with advice.
    """
    try:
        return fn(*args, **kwargs)
    except PortraitStudioError as exc:
        raise gr.Error(str(exc), print_exception=False) from exc
    except gr.Error:
        raise
    except Exception as exc:
        if faults.is_out_of_memory(exc):
            log.warning("out of memory in %s: %s", getattr(fn, "__name__", fn), exc)
            faults.release_device_memory()
            raise gr.Error(str(faults.out_of_memory_error(exc)), print_exception=False) from exc
        # A bug: log the traceback on the server, show no traceback to the user.
        log.exception("unexpected error in %s", getattr(fn, "__name__", fn))
        raise gr.Error(
            f"Something went wrong on our side ({type(exc).__name__}). The details are in the server log.",
            print_exception=False,
        ) from exc


def progress_fn(progress: gr.Progress) -> ProgressFn:
    def report(fraction: float, message: str = "") -> None:
        progress(min(max(fraction, 0.0), 1.0), desc=message or None)
        report_current(fraction, message)  # the visitor's job record, which a reloaded page reads

    return report


class CancelTokens(progress.CancelTokens):
    """One live token per (session, task); the time budget and Cancel trip it, the job stops within one step.

    Inside a visitor job (ui.job_runs) the handler's token follows the job's own token, so Cancel from any page
    of the visitor (also after a reload) stops it; the marker files of the base class reach a ZeroGPU worker,
    where the visitor job's in-memory token does not exist."""

    def start(self, session: str, task: str, linked: CancelToken | None = None) -> CancelToken:
        return super().start(session, task, linked or current_token())


def session_key(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "anonymous"


def _visitor_cookie(request: gr.Request) -> str | None:
    try:
        cookies = request.cookies  # a starlette mapping, or a plain object after ZeroGPU pickled the request
        value = cookies[VISITOR_COOKIE] if VISITOR_COOKIE in cookies else None
    except (AttributeError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) and VISITOR_ID_RE.match(value) else None


def request_owner(services: Services, request: gr.Request | None) -> str:
    """Who owns what this request touches: the one place that decides it.

    Locally there is one owner (``local``). On a public deployment (share link or Space) it is, in order:
    the logged-in user (``--auth`` or Hugging Face OAuth), else the per-browser id in the visitor cookie
    (set by ``ui.deploy``; it survives page reloads); a request with neither is refused. Owners are hashed
    into filesystem-safe ids, so no visitor can name another's folder.
    """
    if not getattr(services.settings, "public", False):
        return LOCAL_OWNER
    if request is None:  # never fall back to a shared namespace on a public deployment
        raise gr.Error("This request carries no visitor identity; reload the page.", print_exception=False)
    user = getattr(request, "username", None)
    if user:
        return owner_id(f"user:{user}")
    visitor = _visitor_cookie(request)
    if visitor:
        return owner_id(f"browser:{visitor}")
    # Never the session hash: the client chooses it, so two clients sending one hash would share a namespace.
    raise gr.Error("This request carries no visitor identity: reload the page (the app needs its cookie).",
                   print_exception=False)


def load_picture(path: Path | None) -> Image.Image | None:
    """A stored picture (likeness preview) as pixels: Gradio caches them without serving our folders."""
    if path is None:
        return None
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError:  # deleted or unreadable meanwhile: show nothing rather than fail the page
        return None


def missing_markdown(services: Services, roles: list[str]) -> str:
    problems = services.missing_weights(roles)
    if not problems:
        return ""
    lines = [f"- {exc}" for exc in problems]
    return "**Missing model weights** — this tab will explain the same when you run it:\n" + "\n".join(lines)
