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


# Scheduling over the xdist workers (pyproject.toml: --dist=loadfile --no-loadscope-reorder). A work unit is one
# test module, run on one worker in its own order, except that the modules of ONE_WORKER_FOLDERS form one unit:
# they share apps that a session fixture starts once per worker (tests/deploy: the public app and the ZeroGPU app,
# which loads every tab's models: 17-26 s of start-up, paid by both workers when the modules were spread).
ONE_WORKER_FOLDERS = ("tests/deploy/",)
# The longest units, in seconds (sums of test times of two full runs on the 2-core machine, a quiet and a loaded
# one). They are collected first, longest first; the rest follow in their own order. xdist's default order (most
# tests first) left a 40-160 s module to start last while the other worker idled.
UNIT_SECONDS = {
    "tests/deploy/": 120,
    "tests/talk/test_golden.py": 100,
    "tests/app/test_browser.py": 90,
    "tests/likeness/test_jobs.py": 50,
    "tests/app/test_browser_photos.py": 42,
    "tests/app/test_jobs_browser.py": 42,
    "tests/likeness/test_accelerate.py": 41,
    "tests/foundation/test_cli.py": 40,
    "tests/app/test_modes_client.py": 37,
    "tests/animate/test_service.py": 35,
    "tests/app/test_browser_reuse.py": 32,
    "tests/foundation/test_models.py": 25,
    "tests/faces/test_facexlib_plumbing.py": 25,
    "tests/app/test_browser_talk_engine.py": 21,
    "tests/likeness/test_trainer.py": 20,
    "tests/talk/test_aniportrait_talk.py": 20,
    "tests/likeness/test_end_to_end.py": 18,
    "tests/foundation/test_hub_cache_cli.py": 16,
    "tests/foundation/test_doctor.py": 15,
    "tests/likeness/test_recipe.py": 15,
    "tests/talk/test_service.py": 15,
    "tests/stylize/test_anime_net.py": 12,
    "tests/talk/test_aniportrait_golden.py": 12,
}


def work_unit(nodeid: str) -> str:
    """The xdist work unit of a test: its module, or its folder when that is one of ONE_WORKER_FOLDERS."""
    module = nodeid.split("::", 1)[0]
    return next((folder for folder in ONE_WORKER_FOLDERS if module.startswith(folder)), module)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest work units first; the order inside a unit (a module's own test order) stays as collected."""
    first_seen: dict[str, int] = {}
    for item in items:
        first_seen.setdefault(work_unit(item.nodeid), len(first_seen))

    def key(item: pytest.Item) -> tuple[int, int]:
        unit = work_unit(item.nodeid)
        return -UNIT_SECONDS.get(unit, 0), first_seen[unit]

    items.sort(key=key)  # stable: tests of one unit keep their relative order


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """With --dist=loadfile, schedule by :func:`work_unit` (modules, and ONE_WORKER_FOLDERS whole)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class WorkUnitScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return WorkUnitScheduling(config, log)


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
