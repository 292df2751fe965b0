"""Shared fixtures: one temporary home per test session with the tiny profile built once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from portrait_studio.config import Settings, settings_from_env
from tests.kernel_paths import KERNEL_PATHS
from tests.kernel_paths import kernel_path as use_kernel_path

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("studio_home")


@pytest.fixture(scope="session")
def tiny_settings(tiny_home: Path) -> Settings:
    return settings_from_env({}, home=tiny_home, profile="tiny", cache_gb=4.0)


@pytest.fixture(scope="session")
def tiny_manager(tiny_settings: Settings):
    from portrait_studio.models.manager import ModelManager

    return ModelManager(tiny_settings)


@pytest.fixture()
def offline_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a subprocess that has no weights and no network access to them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTRAIT_STUDIO_")}
    env.update(
        PORTRAIT_STUDIO_HOME=str(tmp_path / "home"),
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(REPO),
    )
    return env


@pytest.fixture(params=KERNEL_PATHS)
def kernel_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Golden tests take this fixture to run once per CPU kernel path (see tests/kernel_paths.py)."""
    with use_kernel_path(request.param):
        yield request.param
