"""Fixtures for Animate: small request settings, a likeness LoRA for the tiny model, zip frame reading."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

# 4 frames of 32 px in 2 steps: every code path runs, each render takes about a second on this CPU.
SMALL = dict(frames=4, steps=2, width=32, height=32, seed=7)


def read_zip_frames(path: Path) -> list[np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".png"))
        return [np.asarray(Image.open(io.BytesIO(archive.read(n))).convert("RGB")) for n in names]


def state_snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same_state(module: torch.nn.Module, snapshot: dict[str, torch.Tensor]) -> bool:
    current = module.state_dict()
    return current.keys() == snapshot.keys() and all(torch.equal(current[k], v) for k, v in snapshot.items())


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from two threads, and on a shared 2-core box they lose a lot to contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def likeness_lora(tiny_manager, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_likeness_lora(tiny_manager.locator.path("base"), tmp_path_factory.mktemp("likeness"))


def write_likeness_lora(base: Path, folder: Path) -> Path:
    """A diffusers-format SD1.5 LoRA (UNet + text encoder) for the tiny base, with non-zero up weights."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig, get_peft_model_state_dict
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel.from_pretrained(str(base), subfolder="unet")
    text_encoder = CLIPTextModel.from_pretrained(str(base), subfolder="text_encoder")
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    text_encoder.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"]))
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for model in (unet, text_encoder):
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    StableDiffusionPipeline.save_lora_weights(
        str(folder),
        unet_lora_layers=get_peft_model_state_dict(unet),
        text_encoder_lora_layers=get_peft_model_state_dict(text_encoder),
        safe_serialization=True,
    )
    return folder / "pytorch_lora_weights.safetensors"
