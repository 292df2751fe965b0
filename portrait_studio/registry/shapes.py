"""Module shapes of a base model, which an imported LoRA must fit.

Keys are ``"unet.<module path>"`` and ``"text_encoder.<module path>"`` (text-encoder paths carry
``text_model.`` like LoRA files do); values are ``(out_features, in_features)`` for linear layers and
``(out_channels, in_channels)`` for convolutions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from portrait_studio.errors import InputError
from portrait_studio.registry.keys import TEXT_ENCODER, UNET, canonical_module

BaseShapes = dict[str, tuple[int, int]]


def base_module_shapes(unet: Any, text_encoder: Any = None) -> BaseShapes:
    """Shapes of every linear and conv layer of a (LoRA-free) UNet and, optionally, text encoder."""
    shapes: BaseShapes = {}
    for component, model in ((UNET, unet), (TEXT_ENCODER, text_encoder)):
        if model is not None:
            shapes.update(_component_shapes(component, model))
    return shapes


def _component_shapes(component: str, model: Any) -> BaseShapes:
    import torch

    shapes: BaseShapes = {}
    for name, module in model.named_modules():
        segments = name.split(".")
        if any(s.startswith(("lora_", "lora_magnitude")) for s in segments):
            continue  # layers an adapter added, not part of the base model
        if segments[-1] == "base_layer":  # a peft-wrapped layer: report it under the wrapper's name
            name = ".".join(segments[:-1])
        if isinstance(module, torch.nn.Linear):
            shape = (module.out_features, module.in_features)
        elif isinstance(module, torch.nn.Conv2d):
            shape = (module.out_channels, module.in_channels)
        else:
            continue
        shapes[f"{component}.{canonical_module(component, name)}"] = shape
    return shapes


def base_shapes_from_model_dir(model_dir: Path) -> BaseShapes:
    """Shapes of an SD1.5-format folder, built from its configs on the meta device (no weights read).

    Cheap even for the full-size model, and needs only ``unet/config.json`` (and
    ``text_encoder/config.json`` when present).
    """
    import torch
    from diffusers import UNet2DConditionModel

    unet_config = model_dir / "unet" / "config.json"
    if not unet_config.is_file():
        raise InputError(f"Base model folder '{model_dir}' has no unet/config.json; is it an SD1.5 folder?")
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(json.loads(unet_config.read_text()))
        text_encoder = None
        if (model_dir / "text_encoder" / "config.json").is_file():
            from transformers import CLIPTextConfig, CLIPTextModel

            text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(str(model_dir / "text_encoder")))
    return base_module_shapes(unet, text_encoder)
