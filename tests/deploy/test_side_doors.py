"""Routes around the queue and the login (findings 1, 4, 5, 7, 8 of the second public-deployment probe).

Each test speaks raw HTTP to the launched apps, as an attacker would; gradio_client keeps working through the
queue (the isolation and load tests use it).
"""

from __future__ import annotations

import json
import socket
import urllib.parse

from gradio_client import Client

from tests.deploy.api import endpoint_args, stylize_args
from tests.deploy.conftest import PASSWORD, USER, port_of
from tests.deploy.rawhttp import login_cookie, request
from tests.deploy.visitors import new_visitor, post_json


def test_direct_run_and_api_routes_cannot_skip_the_queue(public_app) -> None:
    cookie = new_visitor(public_app)
    client = Client(public_app.url, verbose=False)
    full = {"stylize": endpoint_args(client, "/stylize", stylize_args(seed=5)), "library_list": []}
    for route in ("/gradio_api/run/stylize", "/gradio_api/api/stylize", "/gradio_api/run/library_list",
                  "/gradio_api/api/library_list"):
        reply = post_json(public_app, route, {"data": full[route.rsplit("/", 1)[1]]}, cookie)
        assert reply.status in (403, 404), (route, reply.status, reply.body[:200])
        assert b"event_id" not in reply.body and b'"data"' not in reply.body
    # The queue itself still answers, for browsers and gradio_client alike.
    gallery, choice = client.predict(api_name="/library_list")
    assert gallery["value"] == [] and choice["choices"] == []


def test_deep_links_and_monitoring_are_closed_on_the_public_app(public_app) -> None:
    cookie = new_visitor(public_app)
    client = Client(public_app.url, verbose=False)
    client.predict(api_name="/library_list")  # a live session with state
    since = len(public_app.log())
    for path in (f"/gradio_api/deep_link?session_hash={client.session_hash}", "/?deep_link=abc",
                 "/config?deep_link=abc", "/monitoring", "/monitoring/summary", "/monitoring/abc"):
        reply = request(public_app, "GET", path, cookie=cookie)
        assert reply.status in (403, 404), (path, reply.status, reply.body[:200])
    assert not list((public_app.home / "tmp").glob("deep_links/*/state.json"))
    assert "Monitoring URL" not in public_app.log()[since:]
    assert request(public_app, "GET", "/config", cookie=cookie).status == 200  # the page itself still loads


def _raw_get(app, path: bytes) -> tuple[int, bytes]:
    """A GET with the path sent byte for byte (http.client refuses control characters)."""
    with socket.create_connection(("127.0.0.1", port_of(app)), timeout=30) as sock:
        sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data


def test_malformed_file_paths_get_400_without_a_traceback(public_app, guarded_app) -> None:
    variants = [b"/etc/passwd%00.png", b"/etc/passwd%00", b"%00", b"/tmp/%00/x", b"/etc/passwd%2500.png",
                b"/etc/%ff%fe", b"/etc/%c0%ae%c0%ae/passwd", b"%80", b"/etc/passwd%00%2e%2e",
                b"%E2%82", b"/%ed%a0%80"]
    for app in (public_app, guarded_app):
        since = len(app.log())
        for prefix in (b"/gradio_api/file=", b"/file=", b"/gradio_api/file/"):
            for variant in variants:
                status, data = _raw_get(app, prefix + variant)
                assert status == 400, (prefix + variant, status, data[:300])
                assert b"root:" not in data
        assert "Traceback" not in app.log()[since:]


def test_queue_control_routes_need_the_login(guarded_app) -> None:
    stranger = "ps_visitor=" + "a" * 43
    cancel = {"session_hash": "someone", "fn_index": 0, "event_id": "e1"}
    for method, path, body in (("POST", "/gradio_api/cancel", cancel),
                               ("POST", "/gradio_api/reset", {"event_id": "e1"}),
                               ("GET", "/gradio_api/heartbeat/someone", None),
                               ("POST", "/gradio_api/stream/e1", {"data": [], "fn_index": 0})):
        for cookie in ("", stranger, f"access-token-forged=abc; {stranger}"):
            if body is None:
                reply = request(guarded_app, method, path, cookie=cookie)
            else:
                reply = post_json(guarded_app, path, body, cookie)
            assert reply.status == 401, (method, path, cookie, reply.status, reply.body[:200])
    logged_in = login_cookie(guarded_app, USER, PASSWORD)
    reply = post_json(guarded_app, "/gradio_api/cancel", cancel, logged_in)
    assert reply.status == 200 and json.loads(reply.body) == {"success": True}


def test_cookieless_clients_are_refused_not_given_a_namespace_of_their_choice(public_app) -> None:
    for path, payload in (("/gradio_api/call/library_list", {"data": []}),
                          ("/gradio_api/queue/join", {"data": [], "fn_index": 0, "session_hash": "chosen"})):
        reply = post_json(public_app, path, payload)
        assert reply.status == 403 and b"cookie" in reply.body, (path, reply.status, reply.body[:200])
        assert any(h.startswith("ps_visitor=") for h in reply.headers.get_all("set-cookie", []))
    # With the cookie it was given, the same call goes through.
    cookie = new_visitor(public_app)
    assert post_json(public_app, "/gradio_api/call/library_list", {"data": []}, cookie).status == 200
    query = urllib.parse.urlencode({"session_hash": "chosen"})
    assert request(public_app, "GET", f"/gradio_api/deep_link?{query}").status in (403, 404)
