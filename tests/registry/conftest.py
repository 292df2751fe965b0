"""Fixtures for registry tests: the tiny SD1.5 model, its module shapes, and LoRA file factories."""

from __future__ import annotations

from pathlib import Path

import pytest

from portrait_studio.registry import base_module_shapes
from tests.registry.lora_test_files import lora_tensors, write_kohya


@pytest.fixture(scope="session")
def tiny_sd_dir(tiny_manager) -> Path:  # noqa: ANN001
    """The session's tiny SD1.5 folder (build_sd15, built once for every area); these tests only read it."""
    return tiny_manager.locator.path("base")


@pytest.fixture(scope="session")
def base_shapes(tiny_sd_dir: Path) -> dict[str, tuple[int, int]]:
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel.from_pretrained(tiny_sd_dir / "unet")
    text_encoder = CLIPTextModel.from_pretrained(tiny_sd_dir / "text_encoder")
    return base_module_shapes(unet, text_encoder)


@pytest.fixture()
def valid_kohya(tmp_path: Path, base_shapes: dict) -> Path:
    return write_kohya(tmp_path / "valid_kohya.safetensors", lora_tensors(base_shapes), alpha=2.0)


@pytest.fixture()
def tiny_pipe(tiny_sd_dir: Path):  # noqa: ANN201
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd_dir)
    pipe.set_progress_bar_config(disable=True)
    return pipe
