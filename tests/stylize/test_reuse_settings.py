"""Each result keeps its settings; "reuse settings" reads them back and makes the same pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from portrait_studio.errors import InputError
from portrait_studio.media.outputs import save_png
from portrait_studio.stylize.outputs import save_images
from portrait_studio.stylize.request import StylizeRequest
from portrait_studio.stylize.reuse import settings_from_metadata, settings_of_file
from portrait_studio.stylize.service import stylize
from tests.stylize.stylize_helpers import one_torch_thread, register_likeness  # noqa: F401 - autouse fixture


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, tiny_manager):  # noqa: ANN001, ANN201
    from portrait_studio.registry import LoraRegistry

    root = tmp_path_factory.mktemp("reuse_registry")
    store = LoraRegistry(root / "registry")
    register_likeness(store, tiny_manager, root / "files", "Grace", seed=1)
    return store


def test_reused_settings_remake_the_same_image(tiny_manager, tiny_settings, registry, tmp_path: Path) -> None:  # noqa: ANN001
    asked = StylizeRequest(prompt="on a beach", preset="watercolor", negative_prompt="hat", likeness="grace",
                           likeness_weight=0.8, n=2, seed=41, steps=2)
    first = stylize(tiny_manager, asked, tiny_settings, registry)
    paths = save_images(first.images, tmp_path)
    settings = settings_of_file(paths[1])  # the second image: seed 42
    assert (settings.prompt, settings.preset, settings.negative_prompt) == ("on a beach", "watercolor", "hat")
    assert (settings.likeness, settings.likeness_weight, settings.seed, settings.steps) == ("grace", 0.8, 42, 2)
    assert (settings.width, settings.height) == first.images[1].image.size and settings.notes == []
    again = stylize(tiny_manager, settings.request(), tiny_settings, registry)
    assert again.images[0].metadata["prompt"] == first.images[1].metadata["prompt"]
    assert np.array_equal(np.asarray(again.images[0].image), np.asarray(first.images[1].image))
    # Reuse seed only: another prompt, same seed -> the seed is what carries over.
    other = settings.request(seed=7)
    assert other.seed == 7 and other.prompt == "on a beach"


def test_settings_refuse_foreign_or_damaged_images(tmp_path: Path) -> None:
    plain = tmp_path / "photo.png"
    Image.new("RGB", (8, 8)).save(plain)
    with pytest.raises(InputError, match="photo.png carries no Portrait Studio settings"):
        settings_of_file(plain)
    damaged = save_png(Image.new("RGB", (8, 8)), tmp_path / "damaged.png",
                       {"seed": 2**40, "steps": 2, "guidance": 7, "width": 8, "height": 8})
    with pytest.raises(InputError, match="seed"):
        settings_of_file(damaged)
    template = {"seed": 3, "steps": 4, "guidance": 7.0, "width": 64, "height": 64, "sampler": "DDIM",
                "request": {"prompt": "x", "negative_prompt": "", "likeness": None, "template": True}}
    settings = settings_from_metadata(json.loads(json.dumps(template)))
    assert settings.likeness == "" and "template" in settings.notes[0]
