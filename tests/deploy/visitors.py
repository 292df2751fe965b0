"""Raw-HTTP visitors of the public app: a visitor cookie of their own, uploads and calls as a browser makes them."""

from __future__ import annotations

import json

from tests.app.conftest import RunningApp
from tests.deploy.rawhttp import Reply, request

VISITOR_COOKIE = "ps_visitor"


def new_visitor(app: RunningApp) -> str:
    """The ``Cookie`` header of a fresh browser: the visitor cookie the app sets on the first page load."""
    reply = request(app, "GET", "/")
    for header in reply.headers.get_all("set-cookie", []):
        if header.startswith(VISITOR_COOKIE + "="):
            return header.split(";", 1)[0]
    raise AssertionError(f"no visitor cookie set: {reply.headers}")


def post_json(app: RunningApp, path: str, payload: object, cookie: str = "") -> Reply:
    return request(app, "POST", path, body=json.dumps(payload).encode(), cookie=cookie,
                   headers={"Content-Type": "application/json"})


def call_stream(app: RunningApp, api_name: str, data: list, cookie: str) -> tuple[Reply, str]:
    """POST /gradio_api/call/<name>, then read its event stream (empty when the call was refused)."""
    reply = post_json(app, f"/gradio_api/call/{api_name}", {"data": data}, cookie)
    if reply.status != 200:
        return reply, ""
    event = json.loads(reply.body)["event_id"]
    return reply, request(app, "GET", f"/gradio_api/call/{api_name}/{event}", cookie=cookie).body.decode()
