"""The trainer never writes a LoRA whose rank exceeds its layer (the registry refuses those as malformed)."""

from __future__ import annotations

import dataclasses

import torch

from portrait_studio.likeness.config import preset_config
from portrait_studio.likeness.setup import UNET_TARGETS, lora_size


def _block(width: int) -> torch.nn.Module:
    block = torch.nn.Module()
    block.proj_in = torch.nn.Conv2d(width, width, 1)
    block.attn1 = torch.nn.Module()
    block.attn1.to_q = torch.nn.Linear(width, width)
    block.other = torch.nn.Linear(4, 4)  # not a target: its width does not count
    return block


def test_rank_is_capped_at_the_smallest_targeted_layer_and_alpha_keeps_its_ratio() -> None:
    quick = preset_config("Quick", 5)  # rank 32, alpha 16: the tiny profile's 16-wide layers cannot hold it
    assert lora_size(_block(16), UNET_TARGETS, quick) == {"r": 16, "lora_alpha": quick.alpha * 16 / quick.rank}


def test_layers_wide_enough_keep_the_preset_rank() -> None:
    balanced = preset_config("Balanced", 5)
    assert lora_size(_block(320), UNET_TARGETS, balanced) == {"r": balanced.rank, "lora_alpha": balanced.alpha}
    small = dataclasses.replace(balanced, rank=4, alpha=4)
    assert lora_size(_block(16), UNET_TARGETS, small) == {"r": 4, "lora_alpha": 4}
