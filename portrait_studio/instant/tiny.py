"""Random-weight stand-ins of IP-Adapter Plus Face (SD1.5) and its image encoder, in the published layout.

``h94/IP-Adapter/models/ip-adapter-plus-face_sd15.safetensors`` is one flat safetensors file:

- ``image_proj.*``: the Perceiver "Resampler" of IP-Adapter Plus, built by the reference code as
  ``Resampler(dim=cross_attention_dim, depth=4, dim_head=64, heads=12, num_queries=16,
  embedding_dim=<image encoder hidden size>, output_dim=cross_attention_dim, ff_mult=4)``:
  ``latents`` (1, 16, dim), ``proj_in`` (dim, embedding_dim) + bias, ``proj_out`` (output_dim, dim) + bias,
  ``norm_out`` (output_dim), and per layer i: ``layers.i.0.norm1/norm2`` (LayerNorm dim),
  ``layers.i.0.to_q`` (heads*64, dim), ``layers.i.0.to_kv`` (2*heads*64, dim), ``layers.i.0.to_out``
  (dim, heads*64), all without bias, then the feed-forward ``layers.i.1.0`` (LayerNorm dim),
  ``layers.i.1.1`` (4*dim, dim) and ``layers.i.1.3`` (dim, 4*dim), without bias.
- ``ip_adapter.<k>.to_k_ip.weight`` / ``.to_v_ip.weight`` (hidden size of the block, cross_attention_dim):
  one pair per cross-attention layer, numbered 1, 3, 5, ... in the UNet's attention-processor order
  (the self-attention layers take the even numbers and carry no weights).

diffusers reads the heads as ``to_q.shape[0] // 64`` and renames only layers 0-3, so depth 4 and a
multiple of 64 are part of the format, not choices. The image encoder is a transformers
``CLIPVisionModelWithProjection`` folder (``models/image_encoder/config.json`` + ``model.safetensors``);
the real one is OpenCLIP ViT-H/14 (hidden 1280, 32 layers, 16 heads, patch 14, 224 px, projection 1024).
"""

from __future__ import annotations

from pathlib import Path

import torch

from portrait_studio.models.roles import IP_ADAPTER_FACE_FILE, IP_IMAGE_ENCODER_DIR, Role

RESAMPLER_DEPTH = 4
RESAMPLER_QUERIES = 16
RESAMPLER_DIM_HEAD = 64
RESAMPLER_FF_MULT = 4
TINY_RESAMPLER_HEADS = 2  # the published SD1.5 file has 12
TINY_ENCODER = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                    image_size=32, patch_size=8, projection_dim=16)


def cross_attention_layers(unet_config: dict) -> list[tuple[str, int]]:
    """``(processor name, hidden size)`` of every cross-attention layer, in the order diffusers numbers them."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**unet_config)
    channels = list(unet.config.block_out_channels)
    layers = []
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name[len("up_blocks.")])]
        else:
            hidden = channels[int(name[len("down_blocks.")])]
        layers.append((name, hidden))
    return layers


def ip_adapter_plus_tensors(
    unet_config: dict, image_hidden: int, heads: int, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Random tensors of an IP-Adapter Plus (Face) file for a UNet with ``unet_config``."""
    cross = int(unet_config["cross_attention_dim"])
    dim, inner = cross, heads * RESAMPLER_DIM_HEAD

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * 0.2

    tensors: dict[str, torch.Tensor] = {
        "image_proj.latents": rand(1, RESAMPLER_QUERIES, dim),
        "image_proj.proj_in.weight": rand(dim, image_hidden),
        "image_proj.proj_in.bias": torch.zeros(dim),
        "image_proj.proj_out.weight": rand(cross, dim),
        "image_proj.proj_out.bias": torch.zeros(cross),
        "image_proj.norm_out.weight": torch.ones(cross),
        "image_proj.norm_out.bias": torch.zeros(cross),
    }
    for i in range(RESAMPLER_DEPTH):
        stem = f"image_proj.layers.{i}"
        for norm in ("norm1", "norm2"):
            tensors[f"{stem}.0.{norm}.weight"] = torch.ones(dim)
            tensors[f"{stem}.0.{norm}.bias"] = torch.zeros(dim)
        tensors[f"{stem}.0.to_q.weight"] = rand(inner, dim)
        tensors[f"{stem}.0.to_kv.weight"] = rand(2 * inner, dim)
        tensors[f"{stem}.0.to_out.weight"] = rand(dim, inner)
        tensors[f"{stem}.1.0.weight"] = torch.ones(dim)
        tensors[f"{stem}.1.0.bias"] = torch.zeros(dim)
        tensors[f"{stem}.1.1.weight"] = rand(RESAMPLER_FF_MULT * dim, dim)
        tensors[f"{stem}.1.3.weight"] = rand(dim, RESAMPLER_FF_MULT * dim)
    for index, (_, hidden) in enumerate(cross_attention_layers(unet_config)):
        key_id = 2 * index + 1
        # Larger than a trained adapter's so that the tiny adapter visibly changes the output.
        tensors[f"ip_adapter.{key_id}.to_k_ip.weight"] = rand(hidden, cross) * 5
        tensors[f"ip_adapter.{key_id}.to_v_ip.weight"] = rand(hidden, cross) * 5
    return {key: value.contiguous() for key, value in tensors.items()}


def build_ip_adapter_face(folder: Path, role: Role | None = None) -> None:
    """``ip-adapter-plus-face_sd15.safetensors`` for the tiny UNet and the tiny image encoder."""
    from safetensors.torch import save_file

    from portrait_studio.models.tiny import tiny_unet_kwargs

    generator = torch.Generator().manual_seed(14)
    tensors = ip_adapter_plus_tensors(tiny_unet_kwargs(), TINY_ENCODER["hidden_size"], TINY_RESAMPLER_HEADS, generator)
    filename = role.tiny_path if role and role.tiny_path else IP_ADAPTER_FACE_FILE
    save_file(tensors, str(folder / filename), metadata={"format": "pt"})


def build_ip_image_encoder(folder: Path, role: Role | None = None) -> None:
    """``models/image_encoder/`` (config.json + model.safetensors) with a tiny CLIP vision tower."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.manual_seed(14)
    config = CLIPVisionConfig(hidden_act="gelu", layer_norm_eps=1e-5, **TINY_ENCODER)
    model = CLIPVisionModelWithProjection(config)
    model.save_pretrained(str(folder / IP_IMAGE_ENCODER_DIR), safe_serialization=True)
