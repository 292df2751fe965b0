"""On a public deployment every visitor has a namespace of their own; nobody lists, loads or downloads another's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from portrait_studio.registry.storage import owner_key
from portrait_studio.services import owner_id
from tests.deploy.api import call, stylize_args
from tests.deploy.rawhttp import file_url, request
from tests.deploy.visitors import new_visitor

VISITOR_COOKIE = "ps_visitor"


def _slugs(listing) -> list[str]:
    _, choice = listing
    return [value for _, value in choice["choices"]]


@pytest.fixture(scope="module")
def alice(public_app, lora_file: Path) -> Client:
    client = Client(public_app.url, verbose=False)
    call(client, "/library_import", file_path=handle_file(str(lora_file)), name="Alice style")
    return client


def test_each_browser_gets_its_own_visitor_id(public_app, alice: Client) -> None:
    bob = Client(public_app.url, verbose=False)
    ids = {alice.cookies.get(VISITOR_COOKIE), bob.cookies.get(VISITOR_COOKIE)}
    assert None not in ids and len(ids) == 2
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", i) for i in ids)


def test_a_visitor_never_sees_or_touches_another_visitors_library(public_app, alice: Client) -> None:
    mine = _slugs(alice.predict(api_name="/library_list"))
    assert len(mine) == 1
    bob = Client(public_app.url, verbose=False)
    assert _slugs(bob.predict(api_name="/library_list")) == []
    for api_name, extra in (("/library_export", {"export_format": "kohya"}), ("/library_delete", {}),
                            ("/library_rename", {"name": "mine now"})):
        with pytest.raises(Exception, match="not in the list of choices|not found|Pick a LoRA"):
            call(bob, api_name, slug=mine[0], **extra)
    assert _slugs(alice.predict(api_name="/library_list")) == mine  # untouched
    owners = [p.name for p in (public_app.home / "registry" / "owners").iterdir() if p.is_dir()]
    assert owner_key(owner_id(f"browser:{alice.cookies[VISITOR_COOKIE]}")) in owners
    assert "local" not in owners  # a public app never uses the shared local namespace


def test_the_namespace_survives_a_page_reload(public_app, alice: Client) -> None:
    # A reload opens a new Gradio session (new session hash) but sends the same cookie.
    reloaded = Client(public_app.url, verbose=False, httpx_kwargs={"cookies": dict(alice.cookies)})
    assert reloaded.session_hash != alice.session_hash
    assert _slugs(reloaded.predict(api_name="/library_list")) == _slugs(alice.predict(api_name="/library_list"))


def test_outputs_reach_their_owner_only_through_gradios_cache(public_app, alice: Client) -> None:
    gallery, *_ = call(alice, "/stylize", **stylize_args(seed=21))
    with Image.open(gallery[0]["image"]) as image:
        assert json.loads(image.text["parameters"])["seed"] == 21
        assert image.text["ai_generated"] == "true"
    owner = owner_id(f"browser:{alice.cookies[VISITOR_COOKIE]}")
    written = sorted((public_app.home / "outputs" / owner / "stylize").glob("*/*.png"))
    assert written, "the result was saved in the visitor's own output folder"
    assert all(re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{32}", p.parent.name) for p in written)  # a full uuid4
    for path in written:  # not even the owner fetches the output folder directly; only the cached copy
        assert request(public_app, "GET", file_url(str(path)), cookie=f"{VISITOR_COOKIE}=x").status == 403


def _raw_call(app, api_name: str, data: list) -> str:
    cookie = new_visitor(app)  # a cookieless call is refused outright (test_side_doors)
    reply = request(app, "POST", f"/gradio_api/call/{api_name}", body=json.dumps({"data": data}).encode(),
                    headers={"Content-Type": "application/json"}, cookie=cookie)
    assert reply.status == 200, reply.body[:300]
    event = json.loads(reply.body)["event_id"]
    return request(app, "GET", f"/gradio_api/call/{api_name}/{event}", cookie=cookie).body.decode()


def test_handlers_never_take_a_client_supplied_server_path(public_app, alice: Client) -> None:
    alice_lora = next((public_app.home / "registry").rglob("*.safetensors"))
    for path in ("/etc/passwd", str(alice_lora), str(public_app.home / ".env")):
        stream = _raw_call(public_app, "library_import", [{"path": path, "meta": {"_type": "gradio.FileData"}}, ""])
        assert "event: error" in stream and "Imported" not in stream, stream[-300:]
        photos = [{"path": path, "meta": {"_type": "gradio.FileData"}}] * 5
        stream = _raw_call(public_app, "check_photos", [photos])
        assert "event: error" in stream and "root:" not in stream, stream[-300:]


def test_choices_are_checked_on_the_server(public_app, alice: Client) -> None:
    slug = _slugs(alice.predict(api_name="/library_list"))[0]
    for bad in ({"slug": "../../registry", "export_format": "kohya"}, {"slug": slug, "export_format": "../pickle"}):
        with pytest.raises(Exception, match="not in the list of choices"):
            call(alice, "/library_export", **bad)
    exported = call(alice, "/library_export", slug=slug, export_format="kohya")
    assert Path(exported).suffix == ".safetensors" and Path(exported).stat().st_size > 0
