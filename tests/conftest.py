"""Shared fixtures: one temporary home per test session with the tiny profile built once.

The whole session computes with one torch thread, and the processes it starts (apps, CLIs, training workers)
inherit OMP_NUM_THREADS=1 unless the caller set it. The models here are tiny: extra intra-op threads buy
nothing and, with pytest, an app and a worker sharing two cores, they spin against each other (the area
conftests that already did this per test measured 3x; module- and session-scoped fixtures ran before those).
Golden tests still run multi-threaded on their "default" kernel path (tests/kernel_paths.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from portrait_studio.config import Settings, settings_from_env
from tests.kernel_paths import FLOAT64_KERNEL_PATHS, KERNEL_PATHS
from tests.kernel_paths import kernel_path as use_kernel_path

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    import torch

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)


def session_tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of tiny models for the whole run, shared by the parallel workers.

    The face stand-ins have their published architectures (GFPGAN alone is 340 MB), so a tiny profile is
    about 0.8 GB; built per worker and per home it filled a CI machine's disk. The locator builds each role
    under a file lock, so workers that ask for the same role at once build it once.
    """
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = root / "tiny-models"
    folder.mkdir(exist_ok=True)
    return folder


def home_with_session_models(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A new home folder whose tiny models are the run's shared ones."""
    home = tmp_path_factory.mktemp(name)
    (home / "tiny-models").symlink_to(session_tiny_models(tmp_path_factory), target_is_directory=True)
    return home


@pytest.fixture(scope="session")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return home_with_session_models(tmp_path_factory, "studio_home")


@pytest.fixture(scope="session")
def tiny_settings(tiny_home: Path) -> Settings:
    return settings_from_env({}, home=tiny_home, profile="tiny", cache_gb=4.0)


@pytest.fixture(scope="session")
def tiny_manager(tiny_settings: Settings):
    from portrait_studio.models.manager import ModelManager

    return ModelManager(tiny_settings)


def share_tiny_models(home: Path, tiny_settings: Settings) -> Path:
    """Make ``home`` use the session's tiny models (each random model is built once per session, not per home)."""
    home.mkdir(parents=True, exist_ok=True)
    tiny_settings.tiny_dir.mkdir(parents=True, exist_ok=True)
    (home / "tiny-models").symlink_to(tiny_settings.tiny_dir, target_is_directory=True)
    return home


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


@pytest.fixture(params=FLOAT64_KERNEL_PATHS)
def float64_kernel_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Float64 golden tests: the kernel paths that differ for float64 work (see tests/kernel_paths.py)."""
    with use_kernel_path(request.param):
        yield request.param
