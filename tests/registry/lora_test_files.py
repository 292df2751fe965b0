"""Builders of LoRA files for registry tests: valid ones in each grammar and tampered copies."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file

from portrait_studio.registry.keys import flatten_module

# Modules our test LoRAs patch: attention projections of both resolutions, a conv, and the text encoder.
UNET_TARGETS = (
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k",
    "up_blocks.1.attentions.2.transformer_blocks.0.attn1.to_out.0",
    "mid_block.attentions.0.proj_in",
)
CONV_TARGETS = {"unet.mid_block.attentions.0.proj_in"}  # a 1x1 Conv2d in SD1.5 (use_linear_projection=False)
TEXT_TARGETS = (
    "text_model.encoder.layers.0.self_attn.q_proj",
    "text_model.encoder.layers.0.self_attn.out_proj",
    "text_model.encoder.layers.1.mlp.fc1",
)


def lora_tensors(
    shapes: dict[str, tuple[int, int]],
    *,
    rank: int = 4,
    seed: int = 0,
    text_encoder: bool = True,
    dtype: torch.dtype = torch.float32,
    amplitude: float = 0.5,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Random (down, up) pairs keyed by ``component.module`` for the standard test targets."""
    generator = torch.Generator().manual_seed(seed)
    targets = [f"unet.{m}" for m in UNET_TARGETS]
    if text_encoder:
        targets += [f"text_encoder.{m}" for m in TEXT_TARGETS]
    pairs = {}
    for target in targets:
        out_features, in_features = shapes[target]
        down = torch.randn(rank, in_features, generator=generator) * amplitude
        up = torch.randn(out_features, rank, generator=generator) * amplitude
        if target in CONV_TARGETS:
            down, up = down[:, :, None, None], up[:, :, None, None]
        pairs[target] = (down.to(dtype).contiguous(), up.to(dtype).contiguous())
    return pairs


def write_kohya(path: Path, pairs: dict, alpha: float | None = None, metadata: dict | None = None) -> Path:
    tensors = {}
    for target, (down, up) in pairs.items():
        component, module = target.split(".", 1)
        name = ("lora_unet_" if component == "unet" else "lora_te_") + flatten_module(module)
        tensors[f"{name}.lora_down.weight"] = down
        tensors[f"{name}.lora_up.weight"] = up
        if alpha is not None:
            tensors[f"{name}.alpha"] = torch.tensor(float(alpha), dtype=down.dtype)
    save_file(tensors, str(path), metadata=metadata)
    return path


def write_diffusers(path: Path, pairs: dict, style: str = "peft", metadata: dict | None = None) -> Path:
    if style == "peft":
        down_suffix, up_suffix = "lora_A.weight", "lora_B.weight"
    else:
        down_suffix, up_suffix = "lora.down.weight", "lora.up.weight"
    tensors = {}
    for target, (down, up) in pairs.items():
        tensors[f"{target}.{down_suffix}"] = down
        tensors[f"{target}.{up_suffix}"] = up
    save_file(tensors, str(path), metadata=metadata)
    return path


def rewrite_safetensors(
    source: Path,
    target: Path,
    mutate_header: Callable[[dict], None] | None = None,
    data_suffix: bytes = b"",
    data_cut: int = 0,
    header_text: bytes | None = None,
) -> Path:
    """Copy ``source`` to ``target`` with its JSON header or data buffer tampered with."""
    raw = source.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    data = raw[8 + length :]
    if mutate_header:
        mutate_header(header)
    encoded = header_text if header_text is not None else json.dumps(header).encode()
    if data_cut:
        data = data[:-data_cut]
    target.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data + data_suffix)
    return target


def pipeline_image(pipe, seed: int = 0) -> torch.Tensor:  # noqa: ANN001
    """A 2-step 32 px image as a tensor: deterministic on CPU for a fixed seed."""
    result = pipe(
        "a portrait photo", num_inference_steps=2, generator=torch.Generator().manual_seed(seed),
        output_type="pt", height=32, width=32, guidance_scale=1.0,
    )
    return result.images
