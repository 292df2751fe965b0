"""Acceptance: the default profile on a Hugging Face cache with no network, as a user runs it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from portrait_studio.models.tiny import build_sd15
from tests.foundation.hf_cache import write_snapshot
from tests.foundation.test_cli import run_cli

BASE_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"


@pytest.fixture()
def cached_base(tmp_path: Path, offline_env: dict[str, str]) -> Path:
    build = tmp_path / "build"
    build_sd15(build)
    hf_home = Path(offline_env["HF_HOME"])
    return write_snapshot(hf_home, BASE_REPO, lambda folder: shutil.copytree(build, folder, dirs_exist_ok=True))


def test_stylize_runs_on_a_complete_cached_snapshot_offline(tmp_path, offline_env, cached_base):
    result = run_cli(["stylize", "--prompt", "a portrait", "--steps", "1", "--n", "1", "--seed", "3",
                      "--out", str(tmp_path / "out")], offline_env)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "out").glob("*.png")] == ["stylize-3.png"]


def test_stylize_names_the_missing_file_and_the_command(tmp_path, offline_env, cached_base):
    (cached_base / "text_encoder" / "model.safetensors").unlink()
    result = run_cli(["stylize", "--prompt", "a portrait", "--steps", "1", "--out", str(tmp_path / "out")],
                     offline_env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: base: text_encoder/model.safetensors missing — run `python -m portrait_studio download --roles base`"
    ]
