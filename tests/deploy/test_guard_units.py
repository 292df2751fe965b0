"""The guard's pure parts: symlinked data folders cannot widen the file route; names render as text."""

from __future__ import annotations

import os
from pathlib import Path

from portrait_studio.config import Settings
from ui.deploy import PublicGuard
from ui.visitor_files import VisitorFiles, json_paths, stream_paths
from ui.widgets import as_text


def _guard(settings: Settings) -> PublicGuard:
    dirs = tuple(str(p) for p in (settings.outputs_dir, settings.registry_dir, settings.jobs_dir,
                                  settings.weights_dir, settings.tiny_dir))
    return PublicGuard(None, home=str(settings.home), cache_dir=str(settings.temp_dir), visitor_cookie=True,
                       settings=settings, data_dirs=dirs)


def test_a_symlinked_outputs_folder_cannot_widen_the_file_guard(tmp_path: Path) -> None:
    elsewhere = tmp_path / "shared-disk"
    (elsewhere / "u-other" / "stylize").mkdir(parents=True)
    secret = elsewhere / "u-other" / "stylize" / "portrait.png"
    secret.write_bytes(b"other visitor")
    settings = Settings(home=tmp_path / "home", public=True)
    settings.home.mkdir()
    (settings.home / "outputs").symlink_to(elsewhere, target_is_directory=True)
    settings.ensure_dirs()
    guard = _guard(settings)
    assert guard.refuses_file(str(secret))  # by its real location
    assert guard.refuses_file(str(settings.outputs_dir / "u-other" / "stylize" / "portrait.png"))
    cached = settings.temp_dir / "abc" / "result.png"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"ok")
    assert not guard.refuses_file(str(cached))  # Gradio's cache is still served


def test_a_symlinked_home_and_a_cache_pointing_into_outputs_are_refused(tmp_path: Path) -> None:
    real_home = tmp_path / "real-home"
    real_home.mkdir()
    (tmp_path / "home-link").symlink_to(real_home, target_is_directory=True)
    settings = Settings(home=tmp_path / "home-link", public=True)
    (settings.home / "outputs").mkdir()
    (settings.home / "tmp").symlink_to(settings.home / "outputs", target_is_directory=True)
    settings.ensure_dirs()
    guard = _guard(settings)
    assert guard.refuses_file(str(real_home / "registry" / "x.safetensors"))
    assert guard.refuses_file(str(settings.temp_dir / "u-a" / "portrait.png"))  # the "cache" is the outputs


def test_visitor_files_bind_cache_paths_to_their_visitors(tmp_path: Path) -> None:
    cache = tmp_path / "tmp"
    (cache / "h1").mkdir(parents=True)
    upload = cache / "h1" / "photo.png"
    upload.write_bytes(b"12345")
    files = VisitorFiles(str(cache), max_age_seconds=3600)
    assert not files.allowed("alice", str(upload))  # never recorded: nobody's
    files.record("alice", [str(upload), "/etc/passwd"], upload=True)
    assert files.allowed("alice", str(upload)) and not files.allowed("bob", str(upload))
    assert not files.allowed(None, str(upload))
    assert files.allowed("bob", "/etc/passwd")  # outside the cache: Gradio's own check refuses it
    assert files.upload_bytes("alice") == 5 and files.upload_bytes("bob") == 0
    link = cache / "h1" / "link.png"
    os.symlink(upload, link)
    assert files.allowed("alice", str(link)) and not files.allowed("bob", str(link))
    body = {"data": [{"path": str(upload), "meta": {}}, [{"path": "x"}], "text"], "fn_index": 1}
    assert list(json_paths(body)) == [str(upload), "x"]
    assert stream_paths(b'data: {"image": {"path": "/a/b\\u00e9.png", "url": "u"}}') == ["/a/b\u00e9.png"]


def test_library_names_render_as_text_not_markup() -> None:
    name = '<img src=x onerror="alert(1)"> [click](http://evil.example) **bold** ![p](http://t.example/p.png)'
    shown = as_text(name)
    assert "<" not in shown and ">" not in shown
    for markup in ("[click](", "**bold**", "![p]("):
        assert markup not in shown
    assert as_text("Ada Lovelace") == "Ada Lovelace"


def _asgi(guard: PublicGuard, scope: dict, body: bytes) -> tuple[int, bytes]:
    """One request through the guard, as uvicorn would hand it over."""
    import asyncio

    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_model_jobs_running_or_waiting_are_capped_per_visitor(tmp_path: Path) -> None:
    import itertools
    import json
    from types import SimpleNamespace

    settings = Settings(home=tmp_path, public=True, max_jobs_per_visitor=2)
    settings.ensure_dirs()
    events: dict[str, object] = {}
    counter = itertools.count()

    async def gradio(scope, receive, send) -> None:  # stands in for Gradio's queue/join: queues an event
        payload = json.loads((await receive())["body"])
        event_id = f"e{next(counter)}"
        events[event_id] = SimpleNamespace(concurrency_id="gpu" if payload["fn_index"] == 0 else "light")
        body = json.dumps({"event_id": event_id}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    blocks = SimpleNamespace(fns={0: SimpleNamespace(concurrency_id="gpu", api_name="stylize"),
                                  1: SimpleNamespace(concurrency_id="light", api_name="library_list")},
                             _queue=SimpleNamespace(event_ids_to_events=events))
    app = SimpleNamespace(get_blocks=lambda: blocks, auth=None)
    guard = PublicGuard(gradio, home=str(settings.home), cache_dir=str(settings.temp_dir), visitor_cookie=True,
                        settings=settings)

    def join(visitor: str, fn_index: int) -> tuple[int, bytes]:
        scope = {"type": "http", "method": "POST", "path": "/gradio_api/queue/join", "query_string": b"",
                 "headers": [(b"cookie", f"ps_visitor={visitor}".encode())], "app": app}
        return _asgi(guard, scope, json.dumps({"data": [], "fn_index": fn_index, "session_hash": "s"}).encode())

    alice, bob = "a" * 43, "b" * 43
    assert [join(alice, 0)[0], join(alice, 0)[0]] == [200, 200]
    status, body = join(alice, 0)
    assert status == 429 and b"limit per visitor is 2 (PORTRAIT_STUDIO_MAX_JOBS_PER_VISITOR)" in body
    assert join(alice, 1)[0] == 200  # light calls (listing the Library) are not model jobs
    assert join(bob, 0)[0] == 200  # another visitor has their own count
    events.pop("e0")  # one of Alice's jobs finished
    assert join(alice, 0)[0] == 200


def test_disk_per_visitor_counts_their_outputs(tmp_path: Path) -> None:
    import gradio as gr
    import pytest

    from ui.limits import check_disk

    settings = Settings(home=tmp_path, public=True, max_disk_mb_per_visitor=1)
    outputs = tmp_path / "outputs" / "u-a"
    outputs.mkdir(parents=True)
    check_disk(settings, outputs)
    (outputs / "big.png").write_bytes(b"\0" * (1024 * 1024))
    with pytest.raises(gr.Error, match=r"limit per visitor is 1 MB \(PORTRAIT_STUDIO_MAX_DISK_MB_PER_VISITOR\)"):
        check_disk(settings, outputs)
    check_disk(Settings(home=tmp_path, max_disk_mb_per_visitor=1), outputs)  # locally: the owner's own disk
