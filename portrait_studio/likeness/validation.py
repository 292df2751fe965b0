"""Validation at each checkpoint: render fixed seeds with the LoRA being trained, score likeness."""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any, Protocol

import torch
from PIL import Image

from portrait_studio.likeness.config import TrainingConfig
from portrait_studio.models.manager import generator_for
from portrait_studio.models.placement import cast_frozen, placement_kept


class LikenessScorer(Protocol):
    """Face similarity of an image to the reference face, in [0, 1]; 0 when no face is found."""

    def score(self, image: Image.Image) -> float: ...


def safe_score(scorer: LikenessScorer, image: Image.Image) -> float:
    """A scorer result clamped to [0, 1]; non-finite results count as 'no face' (0)."""
    value = float(scorer.score(image))
    return min(max(value, 0.0), 1.0) if math.isfinite(value) else 0.0


@torch.no_grad()
def render_validation(
    components: dict[str, Any],
    unet: torch.nn.Module,
    text_encoder: torch.nn.Module,
    scheduler: Any,
    config: TrainingConfig,
    size: int,
    autocast_dtype: torch.dtype | None,
    weight_dtype: torch.dtype | None = None,
) -> list[Image.Image]:
    """One image per validation seed, same prompt and seeds at every checkpoint.

    The VAE and a text encoder taken from the model cache are in the cache's dtype (fp16 on a GPU); the
    UNet being trained is in ``weight_dtype`` (fp32 when mixed precision is "no"). They run in that one
    dtype here, and the shared modules go back to the cache's dtype afterwards, also on error.
    """
    dtype = weight_dtype or unet.dtype
    with placement_kept([components["vae"], text_encoder]):
        cast_frozen(components["vae"], dtype)
        cast_frozen(text_encoder, dtype)  # a trained text encoder's LoRA stays fp32
        return _render(components, unet, text_encoder, scheduler, config, size, autocast_dtype)


def _render(
    components: dict[str, Any],
    unet: torch.nn.Module,
    text_encoder: torch.nn.Module,
    scheduler: Any,
    config: TrainingConfig,
    size: int,
    autocast_dtype: torch.dtype | None,
) -> list[Image.Image]:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=components["vae"],
        text_encoder=text_encoder,
        tokenizer=components["tokenizer"],
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    device = next(unet.parameters()).device
    was_training = unet.training
    unet.eval()
    images = []
    try:
        autocast = (
            torch.autocast(device_type=device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
        )
        with autocast:
            for seed in config.validation_seeds:
                result = pipe(
                    prompt=config.validation_text(),
                    num_inference_steps=config.validation_steps,
                    guidance_scale=config.validation_guidance,
                    width=size,
                    height=size,
                    generator=generator_for(device, seed),
                )
                images.append(result.images[0])
    finally:
        unet.train(was_training)
    return images
