"""Limits per request on the public app (findings 1 and 2): body size, prompt length, upload bytes, files, pixels.

Every refusal names the limit and the setting that changes it.
"""

from __future__ import annotations

import struct
import uuid
import zlib

import pytest
from gradio_client import Client

from tests.deploy.api import call, stylize_args
from tests.deploy.conftest import UPLOAD_CAP_MB
from tests.deploy.rawhttp import Reply, request
from tests.deploy.visitors import new_visitor, post_json


def upload_many(app, files: list[tuple[str, bytes]], cookie: str) -> Reply:
    boundary = uuid.uuid4().hex
    body = b"".join(
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
        f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n"
        for name, content in files
    ) + f"--{boundary}--\r\n".encode()
    return request(app, "POST", "/gradio_api/upload", body=body, cookie=cookie,
                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height: its header says so, and nothing needs decoding to know it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    row = zlib.compress(b"\0" * (1 + width), 9)  # one row; the rest would follow in a real file
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", row) + chunk(b"IEND", b"")


def test_a_megabyte_call_body_is_refused_with_the_limit_named(public_app) -> None:
    cookie = new_visitor(public_app)
    args = stylize_args(seed=1)
    data = [args["prompt_text"], "x" * 1_000_000]
    reply = post_json(public_app, "/gradio_api/call/stylize", {"data": data}, cookie)
    assert reply.status == 413, (reply.status, reply.body[:200])
    assert b"PORTRAIT_STUDIO_MAX_BODY_KB" in reply.body and b"256 KB" in reply.body


def test_a_long_negative_prompt_is_refused_with_the_limit_named(public_app) -> None:
    client = Client(public_app.url, verbose=False)
    with pytest.raises(Exception, match=r"Negative prompt is 5000 characters; the limit is 1000 "
                                        r"\(PORTRAIT_STUDIO_MAX_PROMPT_CHARS\)"):
        call(client, "/stylize", **stylize_args(seed=2), negative_text="blurry, " * 625)
    with pytest.raises(Exception, match="Prompt is 1001 characters"):
        call(client, "/stylize", **{**stylize_args(seed=2), "prompt_text": "p" * 1001})


def test_too_many_files_or_bytes_in_one_upload_are_refused(public_app) -> None:
    cookie = new_visitor(public_app)
    cache = public_app.home / "tmp"
    leftovers_before = {p for p in cache.glob("tmp*") if p.is_file()}
    reply = upload_many(public_app, [(f"f{i}.txt", b"x") for i in range(999)], cookie)
    assert reply.status == 413 and b"PORTRAIT_STUDIO_MAX_UPLOAD_FILES" in reply.body, (reply.status, reply.body)
    under_each_cap = b"\1" * (UPLOAD_CAP_MB * 1024 * 1024 - 4096)
    reply = upload_many(public_app, [(f"big{i}.bin", under_each_cap) for i in range(5)], cookie)
    assert reply.status == 413 and b"PORTRAIT_STUDIO_MAX_UPLOAD_REQUEST_MB" in reply.body, (reply.status, reply.body)
    too_big_one = upload_many(public_app, [("huge.bin", b"\2" * (UPLOAD_CAP_MB * 1024 * 1024 + 4096))], cookie)
    assert too_big_one.status == 413  # Gradio's own cap per file
    assert {p for p in cache.glob("tmp*") if p.is_file()} == leftovers_before  # refused uploads left no files
    assert request(public_app, "GET", "/gradio_api/info", cookie=cookie).status == 200
    ok = upload_many(public_app, [("a.txt", b"one"), ("b.txt", b"two")], cookie)
    assert ok.status == 200, ok.body[:200]  # a normal multi-file upload still works


def test_an_image_over_the_pixel_cap_is_refused_from_its_header(public_app) -> None:
    cookie = new_visitor(public_app)
    before = {p for p in (public_app.home / "tmp").rglob("*.png")}
    reply = upload_many(public_app, [("huge.png", png_header_only(12_000, 12_000))], cookie)
    assert reply.status == 413, (reply.status, reply.body[:200])
    assert b"144 megapixels" in reply.body and b"PORTRAIT_STUDIO_MAX_IMAGE_PIXELS" in reply.body
    assert {p for p in (public_app.home / "tmp").rglob("*.png")} == before  # and it was not kept
    small = upload_many(public_app, [("small.png", png_header_only(64, 64))], cookie)
    assert small.status == 200, small.body[:200]
