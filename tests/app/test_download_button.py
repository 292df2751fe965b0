"""The "Download" button beside a missing-weights message: size first, local only unless the owner allows."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from portrait_studio.config import settings_from_env
from portrait_studio.errors import MissingWeightsError
from portrait_studio.models import downloads
from portrait_studio.models.locator import ModelLocator
from ui.downloads import missing_notice


def _buttons(settings) -> list[str]:  # noqa: ANN001
    services = SimpleNamespace(settings=settings, missing_weights=lambda roles: [])
    with gr.Blocks() as demo:
        missing_notice(services, ["base", "motion_adapter"])
    return [b.value for b in demo.blocks.values() if isinstance(b, gr.Button)]


def test_local_app_offers_the_download_with_its_size(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    settings = settings_from_env({}, home=tmp_path / "home", device="cpu")
    assert _buttons(settings) == ["Download base, motion_adapter (6.08 GB)"]


@pytest.mark.parametrize("changes, shown", [
    (dict(public=True), False), (dict(public=True, public_downloads=True), True), (dict(offline=True), False),
    (dict(profile="tiny"), False),
])
def test_public_and_offline_apps_hide_it_unless_allowed(tmp_path, changes, shown):
    settings = settings_from_env({}, home=tmp_path / "home", device="cpu").replace(**changes)
    assert bool(_buttons(settings)) is shown


def test_download_roles_checks_the_disk_first_and_reports_progress(tmp_path, monkeypatch):
    settings = settings_from_env({}, home=tmp_path / "home", device="cpu")
    fetched, reports = [], []
    monkeypatch.setattr(ModelLocator, "path", lambda self, name, **kw: fetched.append((name, kw)) or tmp_path)
    downloads.download_roles(settings, ["animatediff_lightning"], lambda f, m="": reports.append((f, m)))
    assert fetched == [("animatediff_lightning", {"download": True}),
                       ("motion_adapter", {"download": True, "config_only": True})]
    assert reports[0] == (0.0, "Downloading animatediff_lightning (1 of 1)") and reports[-1][0] == 1.0
    monkeypatch.setattr("shutil.disk_usage", lambda path: SimpleNamespace(free=10_000_000))
    with pytest.raises(MissingWeightsError, match="only 0.01 GB are free"):
        downloads.download_roles(settings, ["base"])
