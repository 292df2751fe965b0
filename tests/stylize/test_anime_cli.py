"""``python -m portrait_studio anime`` with the tiny profile in a temporary home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from portrait_studio.cli import main
from portrait_studio.media.outputs import read_png_metadata

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def home(tiny_home: Path) -> Path:
    return tiny_home  # the session's temporary home (tests/conftest.py)


@pytest.fixture(scope="module")
def grace_path() -> Path:
    from matplotlib import cbook

    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="module")
def coffee_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from skimage import data

    path = tmp_path_factory.mktemp("photos") / "coffee.jpg"
    Image.fromarray(data.coffee()).save(path, quality=90)
    return path


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTRAIT_STUDIO_")}
    env.update(PORTRAIT_STUDIO_HOME=str(home), PORTRAIT_STUDIO_PROFILE="tiny", HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, "-m", "portrait_studio", "anime", *args], cwd=REPO, env=env, capture_output=True,
        text=True, timeout=300,
    )


def test_cli_writes_a_png_with_metadata(home: Path, grace_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "anime.png"
    done = run_cli(home, str(grace_path), "--out", str(out), "--size", "128", "--style", "face_paint_512_v1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == str(out)
    assert "warning: This picture comes from a random-weight test model" in done.stdout
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (128, 128)
    meta = read_png_metadata(out)
    assert meta["style"] == "face_paint_512_v1" and meta["mode"] == "face" and meta["random_weights"] is True
    assert not list(tmp_path.glob(".*.png"))  # no temp file left behind


def test_cli_refuses_a_photo_without_a_face_in_face_mode(home: Path, coffee_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "anime.png"
    done = run_cli(home, str(coffee_path), "--out", str(out), "--size", "128")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error: No face found")
    assert not out.exists()


def _bad_file(tmp_path: Path, kind: str, grace_path: Path) -> Path:
    path = tmp_path / f"{kind}.jpg"
    if kind == "text":
        path.write_text("hello, I am not a picture\n")
    elif kind == "truncated":
        path.write_bytes(grace_path.read_bytes()[:20000])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "folder":
        path.mkdir()
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "file not found"),
        ("text", "not an image"),
        ("empty", "is empty"),
        ("truncated", "truncated or damaged"),
        ("folder", "file not found"),
    ],
)
def test_cli_bad_files_exit_2_with_one_line(home: Path, grace_path: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture, kind: str, message: str) -> None:
    photo = _bad_file(tmp_path, kind, grace_path)
    out = tmp_path / "anime.png"
    code = main(["anime", str(photo), "--out", str(out), "--profile", "tiny", "--home", str(home)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and message in err and err.strip().count("\n") == 0
    assert not out.exists()


def test_cli_wants_a_png_name(home: Path, grace_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["anime", str(grace_path), "--out", str(tmp_path / "a.jpg"), "--profile", "tiny",
                 "--home", str(home)])
    assert code == 2 and "ending in .png" in capsys.readouterr().err
