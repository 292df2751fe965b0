"""Every model that can sit on the device is an entry of the process's model cache, so one unload_all (the
app's, before training) frees them all: facexlib's networks, GFPGAN, facexlib's restore helper, AnimeGAN."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from portrait_studio.config import Settings
from portrait_studio.faces.backends import get_face_backend
from portrait_studio.faces.dlib_backend import DlibBackend
from portrait_studio.faces.restore import _helper, get_restorer
from portrait_studio.models.devices import pick_device
from portrait_studio.models.locator import ModelLocator
from portrait_studio.models.process_cache import process_manager
from portrait_studio.stylize.anime import anime_portrait
from tests.conftest import home_with_session_models

from .conftest import grace_hopper

ROLES = ("face_detection", "face_parsing", "face_recognition", "face_quality", "gfpgan", "animegan_celeba_distill")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = home_with_session_models(tmp_path_factory, "cachedhome")
    settings = Settings(home=home, profile="tiny", face_backend="facexlib")
    locator = ModelLocator(settings)
    for role in ROLES:
        locator.path(role)
    return settings


def roles_in(keys: list[str]) -> set[str]:
    return {key.split(":", 1)[0] for key in keys}


def test_one_unload_all_frees_every_face_restore_and_anime_model(settings: Settings) -> None:
    manager = process_manager(settings)  # what Services.create, the worker and the CLI build
    image = grace_hopper().resize((256, 320))
    rgb = np.asarray(image)
    face = DlibBackend().detect(rgb)[0]
    backend = get_face_backend(settings)
    backend.embed(rgb, face)  # the backend loads all four networks up front; hyperIQA and ParseNet runs cost
    # seconds on a CPU and prove nothing more here
    get_restorer(settings)
    with _helper(settings, pick_device(settings.device)):
        pass
    anime_portrait(Image.new("RGB", (64, 64), (90, 120, 200)), settings, style="celeba_distill", mode="full",
                   size=64)
    loaded = roles_in(manager.cache.keys())
    assert {"face_detection", "face_recognition", "face_quality", "face_parsing", "gfpgan", "face_restore_helper",
            "animegan_celeba_distill"} <= loaded
    assert not any(manager.cache.is_locked(key) for key in manager.cache.keys())  # locked only while running

    dropped = manager.cache.unload_all()
    assert roles_in(dropped) == loaded
    assert manager.cache.keys() == []
    # The backend object survives and loads its networks again on the next call.
    assert backend.embed(rgb, face).shape == (512,)
    assert roles_in(manager.cache.keys()) == {"face_recognition"}
