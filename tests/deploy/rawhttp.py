"""Plain HTTP against the running app: paths sent byte for byte (no client-side ``..`` clean-up)."""

from __future__ import annotations

import http.client
import json
import urllib.parse
import uuid
from dataclasses import dataclass
from email.message import Message

from tests.app.conftest import RunningApp


@dataclass
class Reply:
    status: int
    headers: Message
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name, "")


def request(app: RunningApp, method: str, path: str, *, body: bytes | None = None,
            headers: dict[str, str] | None = None, cookie: str = "") -> Reply:
    host, port = urllib.parse.urlsplit(app.url).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        all_headers = dict(headers or {})
        if cookie:
            all_headers["Cookie"] = cookie
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        return Reply(response.status, response.msg, response.read())
    finally:
        conn.close()


def login_cookie(app: RunningApp, user: str, password: str) -> str:
    """The ``Cookie`` header value of a logged-in browser (Gradio's access-token cookies)."""
    form = urllib.parse.urlencode({"username": user, "password": password}).encode()
    reply = request(app, "POST", "/login", body=form,
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 200, (reply.status, reply.body[:200])
    pairs = [c.split(";", 1)[0] for c in reply.headers.get_all("set-cookie", [])]
    return "; ".join(pairs)


def upload(app: RunningApp, name: str, content: bytes, content_type: str, cookie: str = "") -> Reply:
    """POST one file to Gradio's upload route as a browser does (multipart form, field ``files``)."""
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return request(app, "POST", "/gradio_api/upload", body=body, cookie=cookie,
                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})


def uploaded_path(reply: Reply) -> str:
    assert reply.status == 200, (reply.status, reply.body[:300])
    paths = json.loads(reply.body)
    assert len(paths) == 1
    return paths[0]


def file_url(path: str) -> str:
    return "/gradio_api/file=" + urllib.parse.quote(path)
