"""Face encodings for the adapter: the image encoder's penultimate hidden states of each aligned crop.

That is what IP-Adapter Plus (Face) reads (diffusers: ``encode_image(..., output_hidden_states=True)``,
``hidden_states[-2]``); the negative is the same encoder's states of a black image. Crops are
preprocessed the way diffusers does when a pipeline has no feature extractor:
``CLIPImageProcessor(size=image_size, crop_size=image_size)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image

from portrait_studio.errors import InputError
from portrait_studio.instant.adapter import ENCODER_ROLE, image_encoder
from portrait_studio.models.manager import ModelManager

EMBEDS_KEY = "image_embeds"
FORMAT_VERSION = "1"


def _processor(encoder: Any) -> Any:
    from transformers import CLIPImageProcessor

    size = int(encoder.config.image_size)
    return CLIPImageProcessor(size=size, crop_size=size)


@torch.no_grad()
def encode_faces(manager: ModelManager, faces: list[Image.Image]) -> torch.Tensor:
    """[N, tokens, width] float32 CPU encodings of ``faces`` (aligned crops)."""
    if not faces:
        raise InputError("No face crops to encode: check the photos first.")
    encoder = image_encoder(manager)
    with manager.cache.use(f"{ENCODER_ROLE}:model") as parts:
        model = parts[f"{ENCODER_ROLE}:model"]
        pixels = _processor(model)([face.convert("RGB") for face in faces], return_tensors="pt").pixel_values
        pixels = pixels.to(device=manager.device, dtype=next(model.parameters()).dtype)
        states = model(pixels, output_hidden_states=True).hidden_states[-2]
    del encoder
    return states.float().cpu()


@torch.no_grad()
def negative_encoding(manager: ModelManager, count: int) -> torch.Tensor:
    """[count, tokens, width] encodings of a black image (the adapter's "no face" condition)."""
    image_encoder(manager)
    with manager.cache.use(f"{ENCODER_ROLE}:model") as parts:
        model = parts[f"{ENCODER_ROLE}:model"]
        size = int(model.config.image_size)
        zeros = torch.zeros(1, 3, size, size, device=manager.device, dtype=next(model.parameters()).dtype)
        states = model(zeros, output_hidden_states=True).hidden_states[-2]
    return states.float().cpu().repeat(count, 1, 1)


def save_encodings(encodings: torch.Tensor, path: Path, encoder_id: str) -> Path:
    """Store encodings as float16 safetensors with the encoder that made them (written atomically)."""
    from portrait_studio.registry.convert import write_safetensors_atomic

    metadata = {"format": "pt", "portrait_studio.instant": FORMAT_VERSION, "image_encoder": encoder_id[:300],
                "faces": str(int(encodings.shape[0]))}
    return write_safetensors_atomic({EMBEDS_KEY: encodings.to(torch.float16).contiguous()}, metadata, Path(path))


def load_encodings(path: Path, label: str) -> torch.Tensor:
    """Encodings of an instant likeness as float32, or InputError naming the likeness."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise InputError(f"The face encodings of '{label}' cannot be read ({exc}); create it again.") from None
    value = tensors.get(EMBEDS_KEY)
    if value is None or value.ndim != 3 or not torch.isfinite(value).all():
        raise InputError(f"The face encodings of '{label}' are damaged; create the instant likeness again.")
    return value.float()
