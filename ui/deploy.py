"""HTTP-level guards for the app, as one ASGI middleware (handed to Gradio's FastAPI app by app.py).

Always:
- **File access:** ``/file=`` requests that resolve inside our data folders are refused (403), whatever symlinks
  the home, outputs or other folders are: only Gradio's cache (``home/tmp``) is served. ``allowed_paths``
  lists the outputs folder only so Gradio may *copy* results into its cache. A malformed path (NUL byte,
  invalid percent-encoding or UTF-8) gets 400 before Gradio sees it.
- **Login** (``--auth``): wrong passwords per client address earn a growing wait (``ui.login_guard``); the
  queue control routes (``cancel``, ``reset``, ``heartbeat``, ``stream``) need the login like the rest.
- ``X-Content-Type-Options: nosniff`` on every response.

Public deployments only (``Settings.public``):
- **Visitor cookie:** a random per-browser id in an HttpOnly cookie, so a visitor's namespace survives
  reloads. Calls, uploads and queue joins without it are refused (403, with a cookie to retry with): nobody
  gets a namespace keyed by a session hash they chose. ``ui.common.request_owner`` reads it.
- **Closed side doors:** deep links (Gradio writes a visitor's state to a servable file) and the monitoring
  routes answer 404; ``/run`` and ``/api`` are closed by ``queue(api_open=False)`` in app.py.
- **Limits** (refusals name the limit and its setting): body size of a call, bytes and files of one upload,
  pixels of an uploaded image (read from its header, before anything decodes it), a visitor's disk use,
  model jobs running + waiting per visitor.
- **Whose file:** uploads and results in Gradio's cache are bound to the visitor who uploaded or received them
  (``ui.visitor_files``): another visitor's cache path is refused in a call and on the file route.
"""

from __future__ import annotations

import json
import os
import secrets
import warnings
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

from ui.common import VISITOR_COOKIE, VISITOR_ID_RE
from ui.login_guard import LoginThrottle, client_address
from ui.visitor_files import VisitorFiles, json_paths, stream_paths

FILE_ROUTES = ("/gradio_api/file=", "/file=", "/gradio_api/file/", "/file/")
COOKIE_MAX_AGE = 400 * 24 * 3600  # the longest lifetime browsers accept
API = "/gradio_api"
QUEUE_CONTROL = (f"{API}/cancel", f"{API}/reset", f"{API}/heartbeat/", f"{API}/stream/")
CLOSED_WHEN_PUBLIC = (f"{API}/deep_link", "/monitoring", f"{API}/monitoring")
JOIN_ROUTES = (f"{API}/queue/join", f"{API}/call/", f"{API}/run/", f"{API}/api/")
EVENT_STREAMS = (f"{API}/queue/data", f"{API}/call/")
GPU_CONCURRENCY = "gpu"

Scope = dict[str, Any]


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class PublicGuard:
    """ASGI middleware; ``home`` is the data folder, ``cache_dir`` Gradio's temp dir inside it."""

    def __init__(self, app: Any, *, home: str, cache_dir: str, visitor_cookie: bool,
                 settings: Any = None, data_dirs: tuple[str, ...] = ()) -> None:
        self.app = app
        self.cache_dir = os.path.realpath(cache_dir)
        self.home = os.path.realpath(home)
        # Every data folder by its real location: a symlinked outputs (or home) folder cannot widen what is served.
        self.protected = sorted({os.path.realpath(home), *(os.path.realpath(d) for d in data_dirs)})
        self.visitor_cookie = visitor_cookie
        self.public = visitor_cookie
        self.settings = settings
        max_age = float(getattr(settings, "cleanup_after_hours", 24.0)) * 3600
        self.files = VisitorFiles(cache_dir, max_age)
        self.logins = LoginThrottle(int(getattr(settings, "login_free_attempts", 3)))

    def _limit(self, name: str, default: float) -> float:
        return float(getattr(self.settings, name, default))

    # File route ------------------------------------------------------------------------------------------
    def refuses_file(self, raw: str) -> bool:
        """True when a ``/file=`` target lies in one of our data folders but outside Gradio's cache."""
        target = unquote(raw)
        path = os.path.realpath(os.path.join(os.getcwd(), target))  # as Gradio resolves it
        if os.sep + "deep_links" + os.sep in path:
            return True
        if _inside(path, self.cache_dir):  # served, unless a symlink put a data folder (or the cache) inside one
            return any(_inside(path, root) for root in self.protected if root != self.home)
        return any(_inside(path, root) for root in self.protected)

    def _file_request(self, scope: Scope, prefix: str, visitor: str | None) -> None:
        raw_path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
        raw_target = raw_path.split(b"?", 1)[0][len(prefix.encode()):] if raw_path.startswith(prefix.encode()) \
            else scope["path"][len(prefix):].encode("utf-8", "surrogateescape")
        try:
            once = unquote_to_bytes(raw_target).decode("utf-8")
            twice = unquote(once, errors="strict")
        except (UnicodeDecodeError, UnicodeEncodeError, ValueError):
            raise Refusal(400, "Malformed file path (invalid encoding).") from None
        if "\x00" in once or "\x00" in twice or "\x00" in scope.get("path", ""):
            raise Refusal(400, "Malformed file path (NUL byte).")
        target = scope["path"][len(prefix):]
        if self.refuses_file(target):
            raise Refusal(403, "File not allowed.")
        if self.public:
            owners = self.files.owners(os.path.join(os.getcwd(), unquote(target)))
            if owners is not None and visitor not in owners:
                raise Refusal(403, "File not allowed.")

    # ASGI ------------------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = scope.get("path", "")
        method = scope.get("method", "GET")
        visitor = _visitor(scope)
        new_cookie = None
        if self.visitor_cookie and visitor is None:
            new_cookie = secrets.token_urlsafe(32)
            user = _logged_in_user(scope.get("app"), scope)
            visitor = f"user:{user}" if user else None  # a logged-in API client may keep no other cookie
        sent = {"started": False}

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                sent["started"] = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-content-type-options"]
                headers.append((b"x-content-type-options", b"nosniff"))
                if new_cookie is not None:
                    headers.append((b"set-cookie", _cookie_header(new_cookie, _is_https(scope))))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self._guarded(scope, receive, send_with_headers, route, method, visitor)
        except Refusal as refusal:
            if sent["started"]:
                raise
            await _plain(send_with_headers, refusal.status, refusal.message.encode())

    async def _guarded(self, scope: Scope, receive: Any, send: Any, route: str, method: str,
                       visitor: str | None) -> None:
        for prefix in FILE_ROUTES:
            if route.startswith(prefix):
                self._file_request(scope, prefix, visitor)
        if self.public and (route.startswith(CLOSED_WHEN_PUBLIC) or _has_query(scope, b"deep_link")):
            raise Refusal(404, "Not found.")
        app = scope.get("app")
        auth_on = getattr(app, "auth", None) is not None
        if auth_on and route.startswith(QUEUE_CONTROL) and _logged_in_user(app, scope) is None:
            raise Refusal(401, "Not authenticated.")
        if method == "POST" and route.rstrip("/") == "/login":
            await self._login(scope, receive, send)
            return
        if self.public and method == "POST":
            if route.startswith((*JOIN_ROUTES, f"{API}/upload", f"{API}/stream/")) and visitor is None:
                raise Refusal(403, "This app needs its visitor cookie: load the page (or keep the cookie it "
                                   "sets) and try again.")
            if route.startswith(f"{API}/upload"):
                await self._upload(scope, receive, send, visitor or "")
                return
            await self._call(scope, receive, send, route, visitor or "", app)
            return
        if self.public and method == "GET" and route.startswith(EVENT_STREAMS) and visitor is not None:
            await self.app(scope, receive, self._recording_results(send, visitor))
            return
        await self.app(scope, receive, send)

    # Login -----------------------------------------------------------------------------------------------
    async def _login(self, scope: Scope, receive: Any, send: Any) -> None:
        address = client_address(scope)
        wait = self.logins.wait_seconds(address)
        if wait > 0:
            raise Refusal(429, f"Too many wrong passwords from your address: wait {wait:.0f} s and try again.")

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                if message["status"] == 200:
                    self.logins.succeeded(address)
                elif message["status"] in (400, 401):
                    self.logins.failed(address)
            await send(message)

        body = await _read_body(receive, int(self._limit("max_body_kb", 256) * 1024))
        await self.app(scope, _replay(body, receive), watch)

    # Calls (queue joins, direct calls) -------------------------------------------------------------------
    async def _call(self, scope: Scope, receive: Any, send: Any, route: str, visitor: str, app: Any) -> None:
        limit_kb = int(self._limit("max_body_kb", 256))
        body = await _read_body(receive, limit_kb * 1024)
        try:
            payload = json.loads(body) if body.strip() else None
        except ValueError:
            payload = None
        for path in json_paths(payload):
            if not self.files.allowed(visitor, path):
                raise Refusal(403, "A file in this request is not one of your uploads or results (or it expired "
                                   "or the app restarted): upload it again.")
        joins = route.startswith(JOIN_ROUTES) and route.count("/") <= 4  # not /call/<name>/<event id>
        if joins and _is_gpu_call(app, route, payload):
            limit = int(self._limit("max_jobs_per_visitor", 3))
            if len(self._open_gpu_events(app, visitor)) >= limit:
                raise Refusal(429, f"You already have {limit} model jobs running or waiting; the limit per visitor "
                                   f"is {limit} (PORTRAIT_STUDIO_MAX_JOBS_PER_VISITOR). Wait for one to finish.")
        if not joins:
            await self.app(scope, _replay(body, receive), send)
            return
        await self.app(scope, _replay(body, receive), self._recording_event(send, visitor))

    def _open_gpu_events(self, app: Any, visitor: str) -> list[str]:
        queue = getattr(getattr(app, "get_blocks", lambda: None)(), "_queue", None)
        events = getattr(queue, "event_ids_to_events", {})
        alive = self.files.open_events(visitor, lambda event_id: event_id in events)
        return [e for e in alive if getattr(events.get(e), "concurrency_id", None) == GPU_CONCURRENCY]

    def _recording_event(self, send: Any, visitor: str) -> Any:
        chunks: list[bytes] = []

        async def record(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    body = b"".join(chunks)
                    try:
                        event_id = json.loads(body).get("event_id")
                    except (ValueError, AttributeError):
                        event_id = None
                    if isinstance(event_id, str):
                        self.files.add_event(visitor, event_id)
                    # A direct (unqueued) call answers with its results: a reloaded page's restored job results.
                    self.files.record(visitor, stream_paths(body))
            await send(message)

        return record

    def _recording_results(self, send: Any, visitor: str) -> Any:
        tail = {"bytes": b""}

        async def record(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                chunk = tail["bytes"] + message.get("body", b"")
                self.files.record(visitor, stream_paths(chunk))
                tail["bytes"] = chunk[-4096:]
            await send(message)

        return record

    # Uploads ---------------------------------------------------------------------------------------------
    async def _upload(self, scope: Scope, receive: Any, send: Any, visitor: str) -> None:
        from ui.upload_limits import UploadCounter, check_uploaded, remove_abandoned, temp_files

        counter = UploadCounter(scope, max_bytes=int(self._limit("max_upload_request_mb", 120) * 2**20),
                                max_files=int(self._limit("max_upload_files", 30)))
        counter.check_declared_length()
        held: list[dict[str, Any]] = []

        async def hold(message: dict[str, Any]) -> None:
            held.append(message)

        before = temp_files(self.cache_dir)
        try:
            await self.app(scope, counter.wrap(receive), hold)
        except Exception:
            remove_abandoned(self.cache_dir, before)
            if counter.refusal is None:
                raise
        if counter.refusal is not None:
            raise counter.refusal
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
        if start is None or start["status"] != 200:
            remove_abandoned(self.cache_dir, before)
        else:
            paths = [p for p in json.loads(body) if isinstance(p, str)]
            self.files.prune()
            check_uploaded(self, paths, visitor, self._outputs_of(scope, visitor))
            self.files.record(visitor, paths, upload=True)
        for message in held:
            await send(message)


    def _outputs_of(self, scope: Scope, visitor: str) -> Path | None:
        if self.settings is None:
            return None
        from portrait_studio.services import owner_id

        user = _logged_in_user(scope.get("app"), scope)
        return Path(self.settings.outputs_dir) / owner_id(f"user:{user}" if user else f"browser:{visitor}")


def _is_gpu_call(app: Any, route: str, payload: Any) -> bool:
    blocks = getattr(app, "get_blocks", lambda: None)()
    fns = getattr(blocks, "fns", {}) or {}
    if route.startswith(f"{API}/queue/join"):
        index = payload.get("fn_index") if isinstance(payload, dict) else None
        fn = fns.get(index) if isinstance(index, int) else None
    else:
        name = route.rstrip("/").rsplit("/", 1)[-1]
        fn = next((f for f in fns.values() if getattr(f, "api_name", None) == name), None)
    return getattr(fn, "concurrency_id", None) == GPU_CONCURRENCY


async def _read_body(receive: Any, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refusal(413, f"Request body over {limit // 1024} KB, the limit per call "
                               "(PORTRAIT_STUDIO_MAX_BODY_KB). Shorten the prompt or send files as uploads.")
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Any) -> Any:
    done = {"sent": False}

    async def replay() -> dict[str, Any]:
        if not done["sent"]:
            done["sent"] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _has_query(scope: Scope, name: bytes) -> bool:
    query = scope.get("query_string", b"")
    return any(part.split(b"=", 1)[0] == name for part in query.split(b"&"))


def _cookies(scope: Scope) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # noqa: BLE001 - a malformed cookie header just means "no cookies"
                continue
    return jar


def _visitor(scope: Scope) -> str | None:
    morsel = _cookies(scope).get(VISITOR_COOKIE)
    return morsel.value if morsel is not None and VISITOR_ID_RE.match(morsel.value) else None


def _has_visitor(scope: Scope) -> bool:
    return _visitor(scope) is not None


def _logged_in_user(app: Any, scope: Scope) -> str | None:
    """The user of Gradio's access-token cookie, as Gradio's own login check reads it."""
    jar = _cookies(scope)
    cookie_id = getattr(app, "cookie_id", "")
    tokens = getattr(app, "tokens", {}) or {}
    for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
        morsel = jar.get(name)
        if morsel is not None and morsel.value in tokens:
            return tokens[morsel.value]
    return None


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


def harden_pillow(max_pixels: int) -> None:
    """Make Pillow refuse images over ``max_pixels`` wherever they are opened (Gradio's decoding included)."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.simplefilter("error", Image.DecompressionBombWarning)


def guard_middleware(home: Path, cache_dir: Path, public: bool, settings: Any = None) -> list[Any]:
    """The ``middleware`` list for ``demo.launch(app_kwargs={"middleware": ...})``."""
    from starlette.middleware import Middleware

    data_dirs: tuple[str, ...] = ()
    if settings is not None:
        data_dirs = tuple(str(p) for p in (settings.outputs_dir, settings.registry_dir, settings.jobs_dir,
                                           settings.weights_dir, settings.tiny_dir))
        if public:
            harden_pillow(settings.max_image_pixels)
    return [Middleware(PublicGuard, home=str(home), cache_dir=str(cache_dir), visitor_cookie=public,
                       settings=settings, data_dirs=data_dirs)]
