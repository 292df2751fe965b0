"""Gradio's file route on the running apps (with and without a password): what it serves and what it refuses.

Anchors: Gradio's file-access guide and its advisories (path traversal through ``/file=``, SSRF through
URL "files", uploads served back as active content, unbounded uploads).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from tests.app.conftest import RunningApp
from tests.conftest import REPO
from tests.deploy.conftest import PASSWORD, UPLOAD_CAP_MB, USER, port_of
from tests.deploy.rawhttp import file_url, login_cookie, request, upload, uploaded_path
from tests.deploy.visitors import new_visitor

SECRET = "PS-SECRET-7f3a"
ROUTES = ("/gradio_api/file=", "/file=", "/gradio_api/file/")


@pytest.fixture(scope="module", params=["public_app", "guarded_app"])
def target(request: pytest.FixtureRequest) -> tuple[RunningApp, str]:
    """Each app with the cookie of a visitor allowed in (logged in on the guarded app)."""
    app: RunningApp = request.getfixturevalue(request.param)
    # A public app refuses uploads without its visitor cookie (test_side_doors): a browser has it from the page.
    cookie = login_cookie(app, USER, PASSWORD) if request.param == "guarded_app" else new_visitor(app)
    # Secrets where a careless server would serve them: our home, its data folders, the outputs of others.
    (app.home / ".env").write_text(f"HF_TOKEN={SECRET}\n")
    for folder in ("registry", "jobs", "weights", "outputs/u-someone-else/stylize/20260101-000000-0"):
        (app.home / folder).mkdir(parents=True, exist_ok=True)
        (app.home / folder / "probe.txt").write_text(SECRET)
    return app, cookie


def _probes(app: RunningApp) -> list[str]:
    home = app.home
    return [
        "../../../../../../../../etc/passwd",
        "..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "%252e%252e/%252e%252e/etc/passwd",
        "/etc/passwd",
        "/proc/self/environ",
        str(Path.home()),
        str(home / ".env"),
        f"{home}/tmp/../.env",
        f"{home}/tmp/%2e%2e/.env",
        str(home / "registry" / "probe.txt"),
        str(home / "jobs" / "probe.txt"),
        str(home / "weights" / "probe.txt"),
        str(home / "outputs" / "u-someone-else" / "stylize" / "20260101-000000-0" / "probe.txt"),
        ".env",
        "app.py",
        str(REPO / "app.py"),
        "tests/deploy/conftest.py",
    ]


def test_traversal_absolute_home_and_secret_paths_are_refused(target: tuple[RunningApp, str]) -> None:
    app, cookie = target
    served = []
    for route in ROUTES:
        for probe in _probes(app):
            reply = request(app, "GET", route + probe, cookie=cookie)
            if reply.status == 200 or SECRET.encode() in reply.body or b"root:" in reply.body:
                served.append(f"{route}{probe} -> {reply.status}")
    assert served == []


def test_url_files_do_not_reach_internal_addresses(target: tuple[RunningApp, str]) -> None:
    app, cookie = target
    for url in (f"http://127.0.0.1:{port_of(app)}/config", "http://169.254.169.254/latest/meta-data/",
                "http://localhost:1/"):
        reply = request(app, "GET", "/gradio_api/file=" + url, cookie=cookie)
        assert reply.status != 200 and b"components" not in reply.body, (url, reply.status)


def test_uploads_are_served_back_inert_and_real_images_still_work(target: tuple[RunningApp, str]) -> None:
    app, cookie = target
    png = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(png, format="PNG")
    path = uploaded_path(upload(app, "dot.png", png.getvalue(), "image/png", cookie))
    assert Path(path).is_relative_to(app.home / "tmp")  # Gradio's cache, inside our home
    served = request(app, "GET", file_url(path), cookie=cookie)
    assert served.status == 200 and served.body == png.getvalue()  # the positive control

    active = {
        "drawing.svg": (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>',
                        "image/svg+xml"),
        "page.html": (b"<html><body><script>alert(document.cookie)</script></body></html>", "text/html"),
        "page.htm": (b"<script>alert(1)</script>", "text/html"),
        "trick.png": (b"<html><script>alert(1)</script></html>", "image/png"),  # lies about its type
    }
    for name, (content, content_type) in active.items():
        path = uploaded_path(upload(app, name, content, content_type, cookie))
        reply = request(app, "GET", file_url(path), cookie=cookie)
        kind = reply.header("content-type")
        assert reply.header("x-content-type-options") == "nosniff", name
        assert "svg" not in kind and "html" not in kind and "javascript" not in kind, (name, kind)
        if not kind.startswith("image/"):
            assert reply.header("content-disposition").startswith("attachment"), name


def test_uploads_over_the_cap_get_413(target: tuple[RunningApp, str]) -> None:
    app, cookie = target
    too_big = b"\0" * (UPLOAD_CAP_MB * 1024 * 1024 + 4096)
    reply = upload(app, "big.bin", too_big, "application/octet-stream", cookie)
    assert reply.status == 413, (reply.status, reply.body[:200])
    assert request(app, "GET", "/gradio_api/info", cookie=cookie).status == 200  # and the app carries on
