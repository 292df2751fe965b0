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
