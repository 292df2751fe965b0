"""``request_owner``: the one place that decides whose namespace a request touches."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import gradio as gr
import pytest
from starlette.requests import Request as StarletteRequest

from portrait_studio.services import LOCAL_OWNER, owner_id
from ui.common import request_owner

VISITOR = "v" * 43


def make_request(cookie: str = "", username: str | None = None, session: str | None = "sess-1") -> gr.Request:
    headers = [(b"cookie", cookie.encode())] if cookie else []
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b"",
             "client": ("203.0.113.9", 1234), "server": ("app", 80), "scheme": "http"}
    return gr.Request(StarletteRequest(scope), username=username, session_hash=session)


def services(public: bool) -> SimpleNamespace:
    return SimpleNamespace(settings=SimpleNamespace(public=public))


def test_locally_everything_belongs_to_the_one_local_owner() -> None:
    assert request_owner(services(False), make_request(f"ps_visitor={VISITOR}", "ada")) == LOCAL_OWNER
    assert request_owner(services(False), None) == LOCAL_OWNER


def test_public_owner_is_login_then_browser_cookie_never_the_session() -> None:
    public = services(True)
    by_login = request_owner(public, make_request(f"ps_visitor={VISITOR}", username="ada"))
    by_cookie = request_owner(public, make_request(f"ps_visitor={VISITOR}"))
    assert by_login == owner_id("user:ada")
    assert by_cookie == owner_id(f"browser:{VISITOR}")
    assert len({by_login, by_cookie, LOCAL_OWNER}) == 3
    assert request_owner(public, make_request(username="ada", session="any")) == by_login
    # The session hash is the client's choice: two clients sending one hash must not share a namespace.
    with pytest.raises(gr.Error, match="no visitor identity"):
        request_owner(public, make_request(session="chosen-by-the-client"))
    # A reload changes the session hash, not the cookie: same owner.
    assert request_owner(public, make_request(f"ps_visitor={VISITOR}", session="sess-2")) == by_cookie
    # ZeroGPU pickles the request on its way to the GPU worker: the owner must not change.
    assert request_owner(public, pickle.loads(pickle.dumps(make_request(f"ps_visitor={VISITOR}")))) == by_cookie


def test_public_requests_without_identity_or_with_forged_cookies_get_no_shared_namespace() -> None:
    public = services(True)
    for junk in ("ps_visitor=../../etc", "ps_visitor=short", "ps_visitor=" + "x" * 200):
        with pytest.raises(gr.Error):
            request_owner(public, make_request(junk))
    with pytest.raises(gr.Error):
        request_owner(public, None)
    with pytest.raises(gr.Error):
        request_owner(public, make_request(session=None))
    assert all(o != LOCAL_OWNER for o in (owner_id(f"browser:{VISITOR}"), owner_id("user:local")))
