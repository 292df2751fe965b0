"""The command line as a user runs it: subprocesses, exit codes, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from tests.conftest import REPO


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "portrait_studio", *args], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=300,
    )


def test_stylize_in_tiny_profile_writes_pngs_with_settings(tmp_path: Path, offline_env, tiny_home) -> None:
    env = dict(offline_env, PORTRAIT_STUDIO_HOME=str(tiny_home))
    result = run_cli(["stylize", "--prompt", "a portrait", "--seed", "5", "--n", "2", "--steps", "2",
                      "--out", str(tmp_path / "out"), "--profile", "tiny"], env)
    assert result.returncode == 0, result.stderr
    files = sorted((tmp_path / "out").glob("*.png"))
    assert [f.name for f in files] == ["stylize-5.png", "stylize-6.png"]
    with Image.open(files[0]) as image:
        params = json.loads(image.text["parameters"])
        assert image.text["ai_generated"] == "true"
        assert not image.getexif()
    assert params["seed"] == 5 and params["prompt"] == "a portrait" and params["random_weights"] is True
    assert "random-weight" in result.stdout


def test_stylize_without_weights_exits_2_with_one_line(tmp_path: Path, offline_env) -> None:
    result = run_cli(["stylize", "--prompt", "a portrait", "--out", str(tmp_path / "out")], offline_env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "Missing model weights for 'base'" in lines[0]
    assert "python -m portrait_studio download --roles base" in lines[0]
    assert not (tmp_path / "out").exists()


def test_profile_comes_from_the_environment_too(tmp_path: Path, offline_env, tiny_home) -> None:
    env = dict(offline_env, PORTRAIT_STUDIO_HOME=str(tiny_home), PORTRAIT_STUDIO_PROFILE="tiny")
    result = run_cli(["models"], env)
    assert result.returncode == 0, result.stderr
    assert "tiny-random/base" in result.stdout


def test_bad_arguments_exit_2_without_traceback(tmp_path: Path, offline_env, tiny_home) -> None:
    # The session's tiny home: the CLI places the base model before it checks the steps (a fresh home built one).
    result = run_cli(["stylize", "--prompt", "x", "--steps", "0", "--out", str(tmp_path), "--profile", "tiny"],
                     dict(offline_env, PORTRAIT_STUDIO_HOME=str(tiny_home)))
    assert result.returncode == 2
    assert "Steps must be between 1 and 150" in result.stderr
    assert "Traceback" not in result.stderr


def test_make_tiny_writes_the_base_model(tmp_path: Path, offline_env) -> None:
    result = run_cli(["make-tiny", str(tmp_path / "tiny"), "--roles", "base"], offline_env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "tiny" / "base" / "model_index.json").is_file()
    assert (tmp_path / "tiny" / "base" / "RANDOM_WEIGHTS.json").is_file()
