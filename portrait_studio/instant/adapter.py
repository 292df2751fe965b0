"""IP-Adapter Plus Face for one request: load it into a pipeline's UNet, steer it, always take it out.

The adapter's weights and its image encoder are cached components (``ip_adapter_face:weights``,
``ip_image_encoder:model``); the UNet is the cached one Stylize and Animate share. diffusers'
``load_ip_adapter`` swaps every attention processor of the UNet and sets ``encoder_hid_proj``; its own
``unload_ip_adapter`` puts back *new* default processors, which would lose whatever processors the
cached UNet had (FreeNoise blocks, custom ones). :func:`face_adapter_applied` keeps the original
processor objects and puts exactly those back, also when the job raised.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from portrait_studio.errors import InputError, MissingWeightsError
from portrait_studio.models.locator import download_command, is_random_weights
from portrait_studio.models.manager import ModelManager

ADAPTER_ROLE = "ip_adapter_face"
ENCODER_ROLE = "ip_image_encoder"
ADAPTER_KEY = f"{ADAPTER_ROLE}:weights"
ENCODER_KEY = f"{ENCODER_ROLE}:model"
MAX_FACE_STRENGTH = 2.0
_SEP = "__"  # buffer names may not contain dots


class AdapterWeights(torch.nn.Module):
    """The adapter file's tensors as buffers, so the model cache can size and place them like a model."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        super().__init__()
        for key, value in tensors.items():
            self.register_buffer(key.replace(".", _SEP), value)

    def nested_state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """``{"image_proj": {...}, "ip_adapter": {...}}``: what ``load_ip_adapter`` takes as a dict."""
        nested: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
        for name, value in self.named_buffers():
            group, key = name.replace(_SEP, ".").split(".", 1)
            nested[group][key] = value
        return nested

    @property
    def image_hidden_size(self) -> int:
        """Width of the image-encoder states the adapter reads (its Resampler's ``proj_in`` input)."""
        return int(self.get_buffer(f"image_proj{_SEP}proj_in{_SEP}weight").shape[1])

    @property
    def cross_attention_dim(self) -> int:
        return int(self.get_buffer(f"image_proj{_SEP}proj_out{_SEP}weight").shape[0])


def read_adapter_file(path: Path) -> dict[str, torch.Tensor]:
    """Flat ``image_proj.*`` / ``ip_adapter.*`` tensors of a published adapter (.safetensors, or the .bin twin)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        tensors = load_file(str(path))
    else:
        nested = torch.load(str(path), map_location="cpu", weights_only=True)
        if not isinstance(nested, dict):
            raise MissingWeightsError(ADAPTER_ROLE, str(path), download_command(ADAPTER_ROLE), "not a state dict")
        tensors = {f"{group}.{key}": value for group, part in nested.items() if isinstance(part, dict)
                   for key, value in part.items()}
    groups = {key.split(".", 1)[0] for key in tensors}
    if groups != {"image_proj", "ip_adapter"} or "image_proj.latents" not in tensors:
        raise MissingWeightsError(
            ADAPTER_ROLE, str(path), download_command(ADAPTER_ROLE),
            "not an IP-Adapter Plus file (expected image_proj.* with a Resampler and ip_adapter.* tensors)",
        )
    return tensors


def adapter_weights(manager: ModelManager) -> AdapterWeights:
    """The cached adapter weights, loaded once."""

    def load() -> AdapterWeights:
        path = manager.locator.path(ADAPTER_ROLE)
        return AdapterWeights({k: v.to(manager.dtype) for k, v in read_adapter_file(path).items()})

    return manager.cache.get(ADAPTER_KEY, load)


def image_encoder(manager: ModelManager) -> Any:
    """The cached CLIP image encoder (``CLIPVisionModelWithProjection``)."""

    def load() -> Any:
        from transformers import CLIPVisionModelWithProjection
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        folder = encoder_folder(manager)
        try:
            model = CLIPVisionModelWithProjection.from_pretrained(str(folder), dtype=manager.dtype)
        except (OSError, ValueError) as exc:
            raise MissingWeightsError(ENCODER_ROLE, str(folder), download_command(ENCODER_ROLE),
                                      str(exc).splitlines()[0][:160]) from exc
        model.requires_grad_(False)
        model.eval()
        return model

    return manager.cache.get(ENCODER_KEY, load)


def encoder_folder(manager: ModelManager) -> Path:
    """The image encoder's folder: ``models/image_encoder`` inside the repo snapshot, or an override folder."""
    from portrait_studio.models.roles import IP_IMAGE_ENCODER_DIR

    root = Path(manager.locator.path(ENCODER_ROLE))
    nested = root / IP_IMAGE_ENCODER_DIR
    return nested if (nested / "config.json").is_file() else root


def adapter_random_weights(manager: ModelManager) -> bool:
    return is_random_weights(Path(manager.locator.path(ADAPTER_ROLE))) or is_random_weights(encoder_folder(manager))


def check_fits(weights: AdapterWeights, unet: Any, embeds: torch.Tensor, label: str) -> None:
    """Refuse an adapter or stored face encodings that do not fit this UNet / this adapter."""
    cross = int(unet.config.cross_attention_dim)
    if weights.cross_attention_dim != cross:
        raise InputError(
            f"The face adapter ({ADAPTER_ROLE}) is made for a model with text width {weights.cross_attention_dim}, "
            f"but this base model has {cross}: use an IP-Adapter for Stable Diffusion 1.5."
        )
    if embeds.ndim != 3 or int(embeds.shape[-1]) != weights.image_hidden_size:
        raise InputError(
            f"The face encodings of '{label}' were made with another image encoder (width "
            f"{int(embeds.shape[-1]) if embeds.ndim else '?'}, this adapter reads {weights.image_hidden_size}). "
            "Create the instant likeness again from its photos."
        )


def checked_strength(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"Face strength must be a number, got {value!r}.") from None
    if not math.isfinite(number) or not 0.0 <= number <= MAX_FACE_STRENGTH:
        raise InputError(f"Face strength must be between 0 and {MAX_FACE_STRENGTH:g}, got {value!r}.")
    return number


@dataclass(frozen=True)
class FaceCondition:
    """Face encodings for one request: positive (the person) and negative (a blank image), [N, seq, width]."""

    positive: torch.Tensor
    negative: torch.Tensor
    strength: float
    label: str

    def call_kwargs(self, guidance: float, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        """``ip_adapter_image_embeds`` for a pipeline call: one adapter, the N faces as its N images.

        With classifier-free guidance (guidance > 1) diffusers expects the negative half first.
        """
        positive = self.positive.unsqueeze(0)
        if guidance > 1.0:
            embeds = torch.cat([self.negative.unsqueeze(0), positive])
        else:
            embeds = positive
        return {"ip_adapter_image_embeds": [embeds.to(device=device, dtype=dtype)]}


@contextlib.contextmanager
def face_adapter_applied(pipe: Any, weights: AdapterWeights, strength: float) -> Iterator[None]:
    """Load the adapter into ``pipe.unet`` at ``strength`` for the ``with`` block, then restore the UNet.

    Afterwards the UNet has its original attention-processor objects, ``encoder_hid_proj`` and
    ``encoder_hid_dim_type`` back, and no adapter parameters: its state dict equals the one before.
    Enter it *after* LoRAs and FreeNoise, so it is undone before them.
    """
    from diffusers.utils import logging as diffusers_logging

    unet = pipe.unet
    processors = dict(unet.attn_processors)
    hid_proj = unet.encoder_hid_proj
    hid_type = unet.config.encoder_hid_dim_type
    feature_extractor = getattr(pipe, "feature_extractor", None)
    verbosity = diffusers_logging.get_verbosity()
    try:
        # The embeddings are computed by us (the cached encoder): the "no image encoder" warning is noise.
        diffusers_logging.set_verbosity_error()
        pipe.load_ip_adapter(weights.nested_state_dict(), subfolder="", weight_name="", image_encoder_folder=None)
        diffusers_logging.set_verbosity(verbosity)
        pipe.set_ip_adapter_scale(float(strength))
        yield
    finally:
        diffusers_logging.set_verbosity(verbosity)
        # The adapter's image projection has attention layers of its own: take it out first, so the
        # UNet counts exactly the layers whose processors were saved.
        unet.encoder_hid_proj = hid_proj
        unet.set_attn_processor(processors)
        unet.config.encoder_hid_dim_type = hid_type
        if hasattr(pipe, "feature_extractor"):
            pipe.feature_extractor = feature_extractor
