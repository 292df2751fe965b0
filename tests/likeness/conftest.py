"""Likeness tests: tiny models, one torch thread (the loop is tiny; extra threads only add contention)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from portrait_studio.config import Settings
from tests.conftest import share_tiny_models


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def job_settings(tiny_settings: Settings, tmp_path: Path) -> Settings:
    """A home of its own for jobs and the registry, sharing the session's tiny models (built once)."""
    from portrait_studio.models.locator import ModelLocator

    ModelLocator(tiny_settings).path("base")
    return tiny_settings.replace(home=share_tiny_models(tmp_path / "home", tiny_settings))
