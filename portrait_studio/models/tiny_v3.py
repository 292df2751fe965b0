"""Tiny random stand-ins for AnimateDiff v3: motion module v1.5.3, its domain adapter, SparseCtrl encoders.

Formats, from the published repositories:

- ``guoyww/animatediff-motion-adapter-v1-5-3``: a diffusers ``MotionAdapter`` folder (config.json +
  diffusion_pytorch_model.safetensors, 1.67 GB fp32). Unlike v1.5.2 it has no motion module in the mid
  block (same size as v1.5, 0.15 GB less than v1.5.2), and ``motion_max_seq_length`` 32.
- ``guoyww/animatediff-motion-lora-v1-5-3``: despite the name, v3's *domain adapter*
  (``v3_sd15_adapter.ckpt``) converted with diffusers' motion-LoRA script: one safetensors file, 25.5 M
  fp32 parameters (102 MB), keys ``unet.<spatial attention>.processor.to_<q|k|v|out>_lora.<down|up>.weight``
  on attn1 and attn2 of every spatial transformer block. 25.5 M parameters is exactly rank 128 on those
  64 projections of SD1.5; the tiny file uses rank 4.
- ``guoyww/animatediff-sparsectrl-rgb`` / ``-scribble``: diffusers ``SparseControlNetModel`` folders. RGB
  takes VAE latents of the keyframes (``conditioning_channels`` 4, ``use_simplified_condition_embedding``),
  scribble takes the sketch pixels (3 channels, the conv embedding); both concatenate the keyframe mask.

ControlNets start with zero convolutions, which would make a random encoder a no-op; the tiny ones get
small random values everywhere so that tests can see a keyframe change the frames.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import torch

from portrait_studio.models.roles import Role
from portrait_studio.models.tiny import LAYERS_PER_BLOCK, NORM_GROUPS, TEXT_DIM, UNET_BLOCKS, tiny_unet_kwargs

MOTION_MAX_SEQ_LENGTH = 32


def tiny_motion_adapter_v3_kwargs() -> dict:
    return dict(
        block_out_channels=UNET_BLOCKS,
        motion_layers_per_block=LAYERS_PER_BLOCK,
        motion_norm_num_groups=NORM_GROUPS,
        motion_num_attention_heads=4,
        motion_max_seq_length=MOTION_MAX_SEQ_LENGTH,
        use_motion_mid_block=False,
    )


def build_motion_adapter_v3(folder: Path, role: Role | None = None) -> None:
    """A MotionAdapter folder shaped like v1.5.3 (no mid-block motion module) for the tiny UNet."""
    from diffusers import MotionAdapter

    torch.manual_seed(2)
    MotionAdapter(**tiny_motion_adapter_v3_kwargs()).save_pretrained(str(folder), safe_serialization=True)


def spatial_attention_projections() -> dict[str, tuple[int, int]]:
    """``{module name: (in, out)}`` of to_q/to_k/to_v/to_out.0 of attn1/attn2 in the tiny UNet's spatial blocks."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**tiny_unet_kwargs())
    return {
        name: (module.in_features, module.out_features)
        for name, module in unet.named_modules()
        if isinstance(module, torch.nn.Linear) and ".transformer_blocks." in name
        and name.endswith((".attn1.to_q", ".attn1.to_k", ".attn1.to_v", ".attn1.to_out.0",
                           ".attn2.to_q", ".attn2.to_k", ".attn2.to_v", ".attn2.to_out.0"))
    }


def build_domain_adapter_lora(folder: Path, role: Role | None = None) -> None:
    """The domain adapter in the published key grammar (see the module docstring), rank 4."""
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(zlib.crc32(b"domain_adapter_v3"))
    rank = 4
    tensors: dict[str, torch.Tensor] = {}
    for name, (in_features, out_features) in sorted(spatial_attention_projections().items()):
        parent, projection = name.rsplit(".to_", 1)
        stem = f"unet.{parent}.processor.to_{projection.split('.')[0]}_lora"
        tensors[f"{stem}.down.weight"] = torch.randn(rank, in_features, generator=generator) * 0.3
        tensors[f"{stem}.up.weight"] = torch.randn(out_features, rank, generator=generator) * 0.3
    filename = role.tiny_path if role and role.tiny_path else "diffusion_pytorch_model.safetensors"
    save_file(tensors, str(folder / filename))


def tiny_sparsectrl_kwargs(kind: str) -> dict:
    unet = tiny_unet_kwargs()
    return dict(
        in_channels=4,
        conditioning_channels=4 if kind == "rgb" else 3,
        use_simplified_condition_embedding=kind == "rgb",
        concat_conditioning_mask=True,
        down_block_types=("CrossAttnDownBlockMotion", "DownBlockMotion"),
        block_out_channels=UNET_BLOCKS,
        layers_per_block=LAYERS_PER_BLOCK,
        norm_num_groups=NORM_GROUPS,
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=unet["attention_head_dim"],
        conditioning_embedding_out_channels=(8, 16),
        motion_max_seq_length=MOTION_MAX_SEQ_LENGTH,
        motion_num_attention_heads=4,
    )


def build_sparsectrl(folder: Path, role: Role | None = None) -> None:
    """A SparseControlNetModel folder (rgb or scribble, from the role name) matching the tiny UNet."""
    from diffusers import SparseControlNetModel

    kind = "scribble" if role is not None and role.name.endswith("scribble") else "rgb"
    torch.manual_seed(3 if kind == "rgb" else 4)
    model = SparseControlNetModel(**tiny_sparsectrl_kwargs(kind))
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():  # the zero convolutions: random instead, or the encoder does nothing
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    model.save_pretrained(str(folder), safe_serialization=True)
