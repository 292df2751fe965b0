"""With ``--auth`` on, nothing but the login page answers a request that is not logged in."""

from __future__ import annotations

import json

import pytest
from gradio_client import Client

from tests.deploy.conftest import PASSWORD, USER
from tests.deploy.rawhttp import file_url, login_cookie, request, upload, uploaded_path


def test_requests_without_login_are_refused(guarded_app) -> None:
    cookie = login_cookie(guarded_app, USER, PASSWORD)
    private = uploaded_path(upload(guarded_app, "me.txt", b"PRIVATE-PHOTO-BYTES", "text/plain", cookie))
    call = json.dumps({"data": ["a portrait"]}).encode()
    attempts = [
        ("GET", "/config", None),
        ("GET", "/gradio_api/info", None),
        ("GET", "/gradio_api/openapi.json", None),
        ("GET", file_url(private), None),
        ("POST", "/gradio_api/upload", b""),
        ("POST", "/gradio_api/call/stylize", call),
        ("POST", "/gradio_api/call/library_list", b'{"data": []}'),
        ("POST", "/gradio_api/queue/join", json.dumps({"data": [], "fn_index": 0, "session_hash": "x"}).encode()),
    ]
    answered = []
    for method, path, body in attempts:
        for stranger in ("", "access-token-forged=abc; ps_visitor=" + "a" * 43):
            reply = request(guarded_app, method, path, body=body, cookie=stranger,
                            headers={"Content-Type": "application/json"} if body else None)
            if reply.status not in (401, 403, 404, 405) or b"PRIVATE-PHOTO-BYTES" in reply.body:
                answered.append(f"{method} {path} -> {reply.status}")
    assert answered == []
    assert request(guarded_app, "GET", file_url(private), cookie=cookie).body == b"PRIVATE-PHOTO-BYTES"


def test_wrong_password_is_refused_and_the_right_one_works(guarded_app) -> None:
    form = b"username=" + USER.encode() + b"&password=guess"
    reply = request(guarded_app, "POST", "/login", body=form,
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 400 and b"Incorrect credentials" in reply.body
    with pytest.raises(Exception, match="(?i)login|credentials"):
        Client(guarded_app.url, verbose=False)
    client = Client(guarded_app.url, verbose=False, auth=(USER, PASSWORD))
    gallery, choice = client.predict(api_name="/library_list")
    assert gallery["value"] == [] and choice["choices"] == []
