"""Uploads belong to the visitor who made them (finding 4): another visitor cannot use or fetch their cache path.

Before, visitor 2 imported visitor 1's upload into their own Library by sending its path to ``library_import``
("client-supplied server paths are refused" held only outside Gradio's cache).
"""

from __future__ import annotations

from pathlib import Path

from gradio_client import Client, handle_file

from tests.deploy.api import call, endpoint_args, stylize_args
from tests.deploy.rawhttp import file_url, request, upload, uploaded_path
from tests.deploy.visitors import call_stream, new_visitor


def _file_data(path: str) -> dict:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


def test_another_visitors_upload_path_is_refused_and_the_uploaders_works(public_app, lora_file: Path) -> None:
    alice, bob = new_visitor(public_app), new_visitor(public_app)
    path = uploaded_path(upload(public_app, "style.safetensors", lora_file.read_bytes(), "application/octet-stream",
                                alice))
    reply, stream = call_stream(public_app, "library_import", [_file_data(path), "stolen"], bob)
    assert reply.status == 403 and b"not one of your uploads" in reply.body, (reply.status, reply.body[:300])
    assert "Imported" not in stream
    assert request(public_app, "GET", file_url(path), cookie=bob).status == 403
    assert request(public_app, "GET", file_url(path), cookie=alice).status == 200

    reply, stream = call_stream(public_app, "library_import", [_file_data(path), "mine"], alice)
    assert reply.status == 200 and "Imported" in stream, stream[-300:]
    _, bobs = call_stream(public_app, "library_list", [], bob)
    assert "mine" not in bobs


def test_results_reach_their_owner_only_and_can_be_sent_back_by_them(public_app) -> None:
    client = Client(public_app.url, verbose=False)
    gallery, *_ = call(client, "/stylize", **stylize_args(seed=41))
    cached = gallery[0]["image"]  # downloaded by gradio_client from the file route, with its cookie
    assert Path(cached).is_file()
    # The server-side cache path of that result, as the event stream gave it to its owner:
    owner_cookie = f"ps_visitor={client.cookies['ps_visitor']}"
    reply, stream = call_stream(public_app, "stylize", endpoint_args(client, "/stylize", stylize_args(seed=42)),
                                 owner_cookie)
    assert reply.status == 200 and "event: complete" in stream, stream[-300:]
    server_path = stream.split('"path": "', 1)[1].split('"', 1)[0]
    stranger = new_visitor(public_app)
    assert request(public_app, "GET", file_url(server_path), cookie=stranger).status == 403
    assert request(public_app, "GET", file_url(server_path), cookie=owner_cookie).status == 200
    # The owner may hand their own result back to a handler (as "Send to Animate/Talk" does); a stranger may not.
    photo = [_file_data(server_path)] * 5
    reply, _ = call_stream(public_app, "check_photos", [photo], stranger)
    assert reply.status == 403
    reply, _ = call_stream(public_app, "check_photos", [photo], owner_cookie)
    assert reply.status == 200


def test_gradio_client_uploads_still_work_through_the_queue(public_app, lora_file: Path) -> None:
    client = Client(public_app.url, verbose=False)
    gallery, choice, status = call(client, "/library_import", file_path=handle_file(str(lora_file)), name="Mine")
    assert "Imported" in status and len(choice["choices"]) == 1
