"""``python -m portrait_studio stylize`` with presets, likenesses, templates; outputs and the download zip."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from portrait_studio.cli import main
from portrait_studio.config import Settings, settings_from_env
from portrait_studio.errors import InputError
from portrait_studio.media.outputs import read_png_metadata
from portrait_studio.models.manager import ModelManager
from portrait_studio.stylize.generate import GeneratedImage
from portrait_studio.stylize.outputs import save_images, zip_outputs
from tests.conftest import share_tiny_models
from tests.stylize.stylize_helpers import (  # noqa: F401 - one_torch_thread is an autouse fixture
    coffee,
    grace_hopper,
    one_torch_thread,
    register_likeness,
)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, tiny_settings: Settings) -> Path:
    """A home with the session's tiny models and one likeness, 'Grace', trained on its tiny base."""
    from portrait_studio.registry import LoraRegistry

    folder = share_tiny_models(tmp_path_factory.mktemp("cli_home"), tiny_settings)
    settings = settings_from_env({}, home=folder, profile="tiny")
    manager = ModelManager(settings)
    register_likeness(LoraRegistry(settings.registry_dir), manager, folder / "files", "Grace",
                      reference=grace_hopper())
    return folder


def cli(home: Path, *args: str) -> int:
    return main(["stylize", "--home", str(home), "--profile", "tiny", *args])


def test_preset_with_likeness_and_best_of_writes_ranked_pngs(home: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "out"
    code = cli(home, "--likeness", "Grace", "--preset", "comic", "--n", "2", "--seed", "5", "--steps", "2",
               "--best-of", "--out", str(out))
    assert code == 0, capsys.readouterr().err
    files = sorted(out.glob("*.png"))
    assert [f.name.split("-")[1] for f in files] == ["01", "02"]  # rank in the name: best first
    params = read_png_metadata(files[0])
    assert params["likeness"] == "Grace" and params["preset"] == "comic" and params["seed"] in (5, 6)
    assert "comic book illustration of sks woman" in params["prompt"] and params["rank"] == 1
    assert "likeness" in capsys.readouterr().out


def test_template_file_mode(home: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    template = tmp_path / "template.jpg"
    grace_hopper().resize((256, 300)).save(template)
    code = cli(home, "--likeness", "Grace", "--prompt", "portrait", "--template", str(template), "--steps", "2",
               "--seed", "9", "--out", str(tmp_path / "out"))
    assert code == 0, capsys.readouterr().err
    [png] = (tmp_path / "out").glob("*.png")
    with Image.open(png) as image:
        assert image.size == (256, 300)
    assert read_png_metadata(png)["mode"] == "template"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--out", "OUT"], "--preset NAME"),
        (["--preset", "nope", "--out", "OUT"], "Unknown style preset 'nope'"),
        (["--prompt", "p", "--likeness", "Nobody", "--out", "OUT"], "No LoRA named 'Nobody'"),
        (["--prompt", "p", "--template", "COFFEE", "--out", "OUT"], "No face was found in the template"),
        (["--prompt", "p", "--template", "missing.png", "--out", "OUT"], "No template named 'missing.png'"),
        (["--prompt", "p", "--denoise", "3", "--out", "OUT"], "Denoise must be between"),
    ],
)
def test_bad_input_exits_2_with_one_line(home: Path, tmp_path: Path, capsys, args, expected) -> None:  # noqa: ANN001
    coffee().save(tmp_path / "coffee.jpg")
    args = [str(tmp_path / "out") if a == "OUT" else str(tmp_path / "coffee.jpg") if a == "COFFEE" else a
            for a in args]
    assert cli(home, *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]
    assert not (tmp_path / "out").exists()


def test_list_presets(home: Path, capsys) -> None:  # noqa: ANN001
    assert cli(home, "--list-presets") == 0
    out = capsys.readouterr().out
    assert "studio-headshot" in out and "cyberpunk" in out


def test_zip_outputs_packs_every_png_atomically(tmp_path: Path) -> None:
    images = [GeneratedImage(Image.new("RGB", (8, 8), (i * 40, 0, 0)), seed, {"seed": seed, "prompt": "p"})
              for i, seed in enumerate((3, 4))]
    paths = save_images(images, tmp_path / "out")
    archive = zip_outputs(paths, tmp_path / "dl" / "all.zip")
    with zipfile.ZipFile(archive) as opened:
        assert sorted(opened.namelist()) == ["stylize-3.png", "stylize-4.png"]
        with opened.open("stylize-4.png") as handle, Image.open(handle) as image:
            assert json.loads(image.text["parameters"])["seed"] == 4
    assert [p.name for p in (tmp_path / "dl").iterdir()] == ["all.zip"]  # no temp file left behind
    with pytest.raises(InputError, match="no longer exist"):
        zip_outputs([tmp_path / "gone.png"], tmp_path / "dl" / "x.zip")
    with pytest.raises(InputError, match="no images"):
        zip_outputs([], tmp_path / "dl" / "x.zip")
    assert not (tmp_path / "dl" / "x.zip").exists()
