"""Hugging Face Spaces: the README's Spaces config, ``import app`` with ``spaces`` installed, ZeroGPU wiring."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest
import yaml

from portrait_studio.models.roles import ROLES, HubSource
from tests.conftest import REPO
from tests.deploy.api import call
from tests.deploy.conftest import PASSWORD, USER


def front_matter() -> dict:
    text = (REPO / "README.md").read_text()
    match = re.match(r"^---\n(.*?)\n---\n", text, re.DOTALL)
    assert match, "README.md must start with the Spaces YAML block between --- lines"
    return yaml.safe_load(match.group(1))


def pinned(requirement: str) -> str:
    return pinned_in("requirements.txt", requirement)


def pinned_in(filename: str, requirement: str) -> str:
    for line in (REPO / filename).read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep and name.strip().lower() == requirement:
            return version.strip()
    raise AssertionError(f"{requirement} is not pinned in {filename}")


def test_readme_front_matter_is_a_valid_spaces_config() -> None:
    config = front_matter()
    assert config["sdk"] == "gradio"
    assert str(config["sdk_version"]) == pinned("gradio")  # the Space runs the Gradio we test against
    assert (REPO / config["app_file"]).is_file() and config["app_file"] == "app.py"
    assert re.fullmatch(r"3\.\d+", str(config["python_version"]))
    assert isinstance(config["python_version"], str), "quote it: YAML reads 3.10 as the number 3.1"
    hub_ids = {role.source.repo_id for role in ROLES.values() if isinstance(role.source, HubSource)}
    assert config["models"] and set(config["models"]) <= hub_ids  # only models the app really loads
    assert {ROLES["base"].source.repo_id, ROLES["motion_adapter"].source.repo_id} <= set(config["models"])
    for key in ("title", "emoji", "colorFrom", "colorTo", "license"):
        assert config.get(key), key


@pytest.mark.skipif(importlib.util.find_spec("spaces") is None, reason="the spaces package is not installed")
def test_app_imports_with_spaces_installed_and_no_gpu(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTRAIT_STUDIO_", "SPACES_"))}
    env.update(PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="", SPACE_ID="someone/portrait-studio",
               HOME=str(tmp_path))
    probe = ("import app, sys; print(app.spaces.__name__, app.default_host(), app.parse_args([]).port, "
             "'gradio' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    # spaces is really imported, before gradio; a Space listens on 0.0.0.0:7860.
    assert run.stdout.split() == ["spaces", "0.0.0.0", "7860", "False"]


def test_zerogpu_imports_spaces_before_torch_and_places_the_base_model_at_start_up(deploy_apps) -> None:
    # The local start defers torch and every model to first use; on ZeroGPU both still happen at start-up.
    stub_lines = deploy_apps.stub_log.read_text().splitlines()
    assert stub_lines[0] == "imported torch_loaded=False"
    assert "ZeroGPU: preloaded base:unet, base:vae, base:text_encoder, base:tokenizer" in deploy_apps.guarded.log()


def test_every_model_handler_asks_zerogpu_for_a_gpu_and_training_is_off(deploy_apps) -> None:
    from gradio_client import Client

    client = Client(deploy_apps.guarded.url, verbose=False, auth=(USER, PASSWORD))
    with pytest.raises(Exception, match="Training is switched off on this ZeroGPU Space"):
        call(client, "/train", likeness_name="Ada", preset_name="Quick", agreed=True)
    decorated = dict(
        line.split()[1:3] for line in deploy_apps.stub_log.read_text().splitlines() if line.startswith("decorated")
    )
    durations = {name.rsplit(".", 1)[-1]: seconds for name, seconds in decorated.items()}
    assert {"on_check", "on_generate", "on_animate", "on_talk", "on_anime"} <= set(durations)
    # Each asks for what its request needs (tests/deploy/test_zerogpu.py checks the figures).
    assert {durations[name] for name in ("on_check", "on_generate", "on_animate", "on_talk")} == {"dynamic"}
