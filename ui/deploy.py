"""HTTP-level guards for the app, as one ASGI middleware (handed to Gradio's FastAPI app by app.py).

- **File access:** Gradio's ``/file=`` route serves files from ``allowed_paths`` and its own cache. We pass
  ``allowed_paths=[outputs_dir]`` only so Gradio may *copy* results into its cache (content-hashed, with a
  secret seed, so nobody can guess another visitor's URL). Serving our data folder directly is never
  needed, so any ``/file=`` request that resolves inside the home folder, except Gradio's own cache
  (``home/tmp``), gets 403: outputs of other visitors, the registry, jobs, weights.
- **Visitor cookie** (public deployments only): a random per-browser id in an HttpOnly cookie, so a visitor's
  namespace survives page reloads (Gradio's session hash changes on every reload). ``ui.common.request_owner``
  reads it.
- ``X-Content-Type-Options: nosniff`` on every response, so no upload is ever sniffed into active content.
"""

from __future__ import annotations

import os
import secrets
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ui.common import VISITOR_COOKIE, VISITOR_ID_RE

FILE_ROUTES = ("/gradio_api/file=", "/file=", "/gradio_api/file/", "/file/")
COOKIE_MAX_AGE = 400 * 24 * 3600  # the longest lifetime browsers accept

Scope = dict[str, Any]


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class PublicGuard:
    """ASGI middleware; ``home`` is the data folder, ``cache_dir`` Gradio's temp dir inside it."""

    def __init__(self, app: Any, *, home: str, cache_dir: str, visitor_cookie: bool) -> None:
        self.app = app
        self.home = os.path.realpath(home)
        self.cache_dir = os.path.realpath(cache_dir)
        self.visitor_cookie = visitor_cookie

    def refuses_file(self, raw: str) -> bool:
        """True when a ``/file=`` target lies in our data folder but outside Gradio's cache."""
        target = unquote(raw)
        path = os.path.realpath(os.path.join(os.getcwd(), target))  # as Gradio resolves it
        return _inside(path, self.home) and not _inside(path, self.cache_dir)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = scope.get("path", "")
        for prefix in FILE_ROUTES:
            if route.startswith(prefix) and self.refuses_file(route[len(prefix):]):
                await _plain(send, 403, b"File not allowed.")
                return
        new_cookie = None
        if self.visitor_cookie and not _has_visitor(scope):
            new_cookie = secrets.token_urlsafe(32)

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-content-type-options"]
                headers.append((b"x-content-type-options", b"nosniff"))
                if new_cookie is not None:
                    headers.append((b"set-cookie", _cookie_header(new_cookie, _is_https(scope))))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _has_visitor(scope: Scope) -> bool:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # noqa: BLE001 - a malformed cookie header just means "no visitor id yet"
                return False
            morsel = jar.get(VISITOR_COOKIE)
            return morsel is not None and bool(VISITOR_ID_RE.match(morsel.value))
    return False


def _is_https(scope: Scope) -> bool:
    if scope.get("scheme") == "https":
        return True
    return any(k == b"x-forwarded-proto" and v.split(b",")[0].strip() == b"https" for k, v in scope.get("headers", []))


def _cookie_header(value: str, https: bool) -> bytes:
    # Spaces embed the app in an iframe on huggingface.co: a cross-site cookie needs SameSite=None; Secure
    # (and Partitioned, which browsers that block third-party cookies still accept).
    attributes = "SameSite=None; Secure; Partitioned" if https else "SameSite=Lax"
    return f"{VISITOR_COOKIE}={value}; Path=/; Max-Age={COOKIE_MAX_AGE}; HttpOnly; {attributes}".encode()


async def _plain(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff")]})
    await send({"type": "http.response.body", "body": body})


def guard_middleware(home: Path, cache_dir: Path, public: bool) -> list[Any]:
    """The ``middleware`` list for ``demo.launch(app_kwargs={"middleware": ...})``."""
    from starlette.middleware import Middleware

    return [Middleware(PublicGuard, home=str(home), cache_dir=str(cache_dir), visitor_cookie=public)]
