"""Shared pieces for the Stylize tests: real photos, and likeness LoRAs made with peft on the tiny UNet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image

from portrait_studio.models.manager import ModelManager


def grace_hopper() -> Image.Image:
    from matplotlib import cbook

    return Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")


def coffee() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.coffee())


def make_lora_file(manager: ModelManager, folder: Path, seed: int = 0, rank: int = 4) -> Path:
    """A diffusers-format LoRA for the tiny UNet: peft adapter with random (non-zero) A and B, saved with
    ``StableDiffusionPipeline.save_lora_weights`` like training does."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(str(manager.locator.path("base") / "unet"))
    torch.manual_seed(seed)
    # init_lora_weights=False: B is random too, so the LoRA visibly changes the output.
    config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                        target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    unet.add_adapter(config)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    folder.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(str(folder), unet_lora_layers=layers, safe_serialization=True)
    return folder / "pytorch_lora_weights.safetensors"


def register_likeness(registry, manager: ModelManager, folder: Path, name: str, base_model: str | None = None,
                      reference: Image.Image | None = None, seed: int = 0):  # noqa: ANN001, ANN201
    path = make_lora_file(manager, folder / name, seed=seed)
    return registry.add_trained(
        "local", name, path, trigger="sks", class_word="woman",
        base_model=base_model if base_model is not None else manager.sd_info().base_id,
        rank=4, steps=10, similarity=None, reference=reference, random_weights=True,
    )


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_bit_identical(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = module.state_dict()
    assert set(after) == set(before), set(after) ^ set(before)
    for key, tensor in before.items():
        assert torch.equal(after[key], tensor), key


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and on a busy 2-core machine two threads spin against each
    other (measured 3x slower): run these modules single-threaded, then restore the setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
