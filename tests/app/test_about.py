"""The "About this machine" accordion: the doctor report locally, nothing about the host in public."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from portrait_studio.config import settings_from_env
from ui import about


def test_local_app_shows_the_doctor_table(tmp_path):
    services = SimpleNamespace(settings=settings_from_env({}, home=tmp_path / "home", offline=True, device="cpu"))
    text = about.report_text(services)
    assert "torch" in text and "base" in text
    assert "Problems:\nbase: missing" in text
    with gr.Blocks():
        about.build(services)


def test_public_app_shows_only_what_is_ready(tmp_path):
    settings = settings_from_env({}, home=tmp_path / "home", offline=True, device="cpu", public=True)
    text = about.report_text(SimpleNamespace(settings=settings))
    assert text.startswith("GPU: no\nModels ready: none\nModels not installed: base, ")
    for host_detail in (str(tmp_path), "torch", "Python", "ffmpeg", "download --roles"):
        assert host_detail not in text
