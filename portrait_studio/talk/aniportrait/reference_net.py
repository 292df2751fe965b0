"""The ReferenceNet: an SD1.5 ``UNet2DConditionModel`` without its output head.

AniPortrait's copy of the UNet comments out ``conv_norm_out``/``conv_out`` (the ReferenceNet's only product is
the self-attention inputs its transformer blocks record), so ``reference_unet.pth`` has every SD1.5 UNet key
but those four. We build diffusers' class from the base model's ``unet/config.json`` and drop the same head;
the forward then returns the last up block's features, as the reference does.
"""

from __future__ import annotations

from diffusers import UNet2DConditionModel
from torch import nn


def build_reference_net(unet_config: dict) -> UNet2DConditionModel:
    config = {k: v for k, v in unet_config.items() if not k.startswith("_")}
    unet = UNet2DConditionModel.from_config(config)
    unet.conv_norm_out = None  # diffusers skips norm + activation when this is None
    unet.conv_out = nn.Identity()
    return unet
