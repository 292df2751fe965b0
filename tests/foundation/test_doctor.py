"""``doctor``: the machine and every role's state, as a table or JSON; exit 2 with one line per problem."""

from __future__ import annotations

import json
import shutil

import pytest

from portrait_studio.config import settings_from_env
from portrait_studio.models.doctor import COMPLETE, INCOMPLETE, MISSING, build_report, public_view
from portrait_studio.models.roles import ROLES
from portrait_studio.models.tiny import build_sd15
from tests.foundation.hf_cache import FAKE_COMMIT, write_snapshot
from tests.foundation.test_cli import run_cli


def test_tiny_profile_exits_0_with_a_full_table(offline_env, tiny_home):
    result = run_cli(["doctor", "--profile", "tiny"], dict(offline_env, PORTRAIT_STUDIO_HOME=str(tiny_home)))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for role in ROLES:
        assert f"\n{role} " in result.stdout
    assert "torch" in result.stdout and "ffmpeg" in result.stdout


def test_default_profile_without_weights_exits_2_listing_missing_roles(offline_env):
    result = run_cli(["doctor", "--json"], offline_env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(ROLES)
    assert lines[0] == "base: missing (4.27 GB) — run `python -m portrait_studio download --roles base`"
    report = json.loads(result.stdout)
    assert {r["role"]: r["state"] for r in report["roles"]} == {name: MISSING for name in ROLES}
    assert report["problems"] == lines
    assert report["machine"]["device"] == "cpu" and report["machine"]["python"]


def test_report_shows_a_complete_snapshot_its_revision_and_an_incomplete_one(tmp_path, monkeypatch):
    from huggingface_hub import constants

    hf_home = tmp_path / "hf"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    build = tmp_path / "build"
    build_sd15(build)
    snapshot = write_snapshot(hf_home, "stable-diffusion-v1-5/stable-diffusion-v1-5",
                              lambda folder: shutil.copytree(build, folder, dirs_exist_ok=True))
    settings = settings_from_env({}, home=tmp_path / "home", offline=True, device="cpu")
    base = build_report(settings).roles[0]
    assert (base.role, base.state, base.revision) == ("base", COMPLETE, FAKE_COMMIT)
    assert base.bytes_on_disk == sum(p.stat().st_size for p in build.rglob("*") if p.is_file())
    (snapshot / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    report = build_report(settings)
    assert report.roles[0].state == INCOMPLETE
    assert report.problems()[0] == (
        "base: vae/diffusion_pytorch_model.safetensors missing — run `python -m portrait_studio download --roles base`"
    )


def test_public_view_reveals_nothing_about_the_host(tmp_path):
    report = build_report(settings_from_env({}, home=tmp_path / "home", offline=True, device="cpu"))
    view = json.dumps(public_view(report))
    machine = report.machine
    for secret in (str(tmp_path), machine.python, machine.torch, machine.device_name, machine.ffmpeg or "ffmpeg"):
        assert secret not in view
    assert json.loads(view)["roles"][0] == {"role": "base", "group": "stylize", "ready": False}


@pytest.mark.parametrize("tabs", [["stylize", "anime", "train", "training"]])
def test_smoke_runs_the_smallest_request_of_each_tab(tiny_settings, tabs):
    from portrait_studio.models.smoke import run_smoke

    results = run_smoke(tiny_settings, tabs)
    assert [r["tab"] for r in results] == tabs
    for entry in results:
        assert "error" not in entry, entry
        assert entry["seconds"] > 0 and entry["peak_mb"] > 0
    assert results[0]["result"] == "1 image 64x64, 1 step"
    assert results[3]["result"] == "2 steps of the Balanced recipe at 64 px, 1 checkpoint merged"


def test_models_lists_sizes_before_downloading(tmp_path, capsys, monkeypatch):
    from portrait_studio.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # --offline sets it; monkeypatch takes it back afterwards
    code = main(["models", "--home", str(tmp_path / "home"), "--offline"])
    assert code == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["base"].split()[1:4] == ["missing", "stylize", "~4.27"]
    assert lines["controlnet_canny"].split()[3:5] == ["1.45", "GB"]  # confirmed size: no "~"
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5@main" in lines["base"]
