"""The training step is prepared to be cheap: channels-last UNet, fused attention, fused AdamW.

Speed itself is measured in bench/train_bench.py (side by side with the encode-every-step loop); these
tests pin the preparation that the bench's figure depends on.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

from portrait_studio.likeness.setup import Precision, lora_unet, make_optimizer, prepare_unet_for_training, trainable
from tests.likeness.helpers import tiny_config

CPU = torch.device("cpu")


def _convolution_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.shape[-1] > 1]


def test_the_training_unet_is_channels_last_with_fused_attention(tiny_manager) -> None:
    path = tiny_manager.sd_info().path
    unet = lora_unet(path, tiny_config(), CPU, Precision(torch.float32, None, False))
    weights = _convolution_weights(unet)
    assert weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    assert {type(p) for p in unet.attn_processors.values()} == {AttnProcessor2_0}


def test_a_slower_attention_processor_is_replaced(tiny_manager) -> None:
    path = tiny_manager.sd_info().path
    unet = lora_unet(path, tiny_config(), CPU, Precision(torch.float32, None, False))
    unet.set_attn_processor(AttnProcessor())  # the unfused reference implementation
    prepare_unet_for_training(unet, CPU)
    assert {type(p) for p in unet.attn_processors.values()} == {AttnProcessor2_0}


def test_the_optimizer_steps_every_lora_matrix_in_one_fused_kernel(tiny_manager) -> None:
    path = tiny_manager.sd_info().path
    unet = lora_unet(path, tiny_config(), CPU, Precision(torch.float32, None, False))
    optimizer = make_optimizer([{"params": trainable(unet), "lr": 1e-3}], tiny_config(), CPU)
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["fused"] is True
