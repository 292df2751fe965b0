"""Acceptance through the command line: instant likeness from the package photos, then Stylize and Animate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portrait_studio.cli import main
from portrait_studio.media.outputs import read_png_metadata
from tests.conftest import share_tiny_models


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, tiny_settings) -> Path:  # noqa: ANN001
    return share_tiny_models(tmp_path_factory.mktemp("instant_home"), tiny_settings)


def cli(home: Path, *args: str) -> int:
    return main([*args[:1], "--home", str(home), "--profile", "tiny", *args[1:]])


@pytest.fixture(scope="module")
def ada(home: Path, package_photos: dict[str, Path]) -> dict:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli(home, "instant", "--name", "Ada", str(package_photos["grace"]), str(package_photos["astronaut"]),
                   "--json")
    assert code == 0
    return json.loads(out.getvalue())


def test_instant_creates_an_instant_library_entry(home: Path, ada: dict, capsys) -> None:  # noqa: ANN001
    assert ada["kind"] == "instant" and ada["slug"] == "ada" and ada["source"] == "photos"
    assert 1 <= ada["faces_used"] <= 2 and ada["random_weights"] is True
    assert ada["report"]["total"] == 2 and ada["report"]["kept"] == ada["faces_used"]
    assert ada["report"]["backend"] == "dlib"  # real face models on the real photos
    instant_dir = home / "registry" / "owners" / "local" / "ada"
    assert sorted(p.name for p in instant_dir.iterdir()) == [
        "identity.npy", "instant.safetensors", "manifest.json", "preview.png", "reference.png"]
    assert not list((home / "tmp").glob(".instant-*")), "the face-check folder was not deleted"
    assert cli(home, "lora", "list", "--json") == 0
    listing = json.loads(capsys.readouterr().out)
    assert [(r["slug"], r["kind"], r["lora_path"]) for r in listing] == [("ada", "instant", None)]


def test_stylize_with_the_instant_likeness_writes_two_pngs(home: Path, ada: dict, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "out"
    code = cli(home, "stylize", "--likeness", "ada", "--prompt", "studio portrait", "--n", "2", "--steps", "2",
               "--seed", "3", "--out", str(out))
    assert code == 0, capsys.readouterr().err
    files = sorted(out.glob("*.png"))
    assert len(files) == 2
    params = read_png_metadata(files[0])
    assert params["likeness"] == "Ada" and params["likeness_kind"] == "instant" and params["face_strength"] == 0.7
    assert params["prompt"].startswith("a person, studio portrait")


def test_animate_with_the_instant_likeness_writes_an_mp4(home: Path, ada: dict, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    target = tmp_path / "a.mp4"
    code = cli(home, "animate", "--likeness", "ada", "--prompt", "smiling", "--frames", "8", "--steps", "2",
               "--width", "32", "--height", "32", "--seed", "1", "--face-strength", "0.9", "--out", str(target))
    assert code == 0, capsys.readouterr().err
    assert target.is_file() and target.stat().st_size > 0


def test_no_usable_face_exits_2_with_the_photo_report(home: Path, package_photos: dict[str, Path], capsys) -> None:  # noqa: ANN001
    code = cli(home, "instant", "--name", "Cup", str(package_photos["coffee"]), "--json")
    captured = capsys.readouterr()
    assert code == 2
    report = json.loads(captured.out)
    assert report["kept"] == 0 and report["total"] == 1 and report["inputs"][0]["status"] != "kept"
    assert captured.err.startswith("error: ")
    assert cli(home, "lora", "export", "ada", "--out", str(home / "x.safetensors")) == 2
    assert "instant likeness" in capsys.readouterr().err
