"""The training set: the face pipeline's kept crops (+ face/hair masks), encoded once.

VAE latents (of each crop and of its mirror image) and the caption's text embedding are computed a
single time before training; every step then runs only the UNet. We keep each latent's mean and std
and draw a fresh sample per step, which keeps the VAE's sampling noise at no cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from portrait_studio.errors import InputError

ENCODE_BATCH = 4


@dataclass
class TrainingImages:
    images: list[Image.Image]
    masks: list[Image.Image | None]
    names: list[str]


@dataclass
class LatentDataset:
    """Everything a training step draws from, on the CPU in float32."""

    mean: torch.Tensor  # [M, C, h, w], M = images (x2 with flips)
    std: torch.Tensor
    weights: torch.Tensor | None  # [M, 1, h, w] loss weights from the masks, or None
    input_ids: torch.Tensor  # [K, T] token ids of the K captions
    text_embeddings: torch.Tensor | None  # [K, T, D]; None when the text encoder is trained
    scaling_factor: float
    n_images: int

    def __len__(self) -> int:
        return int(self.mean.shape[0])


def load_training_images(dataset_dir: Path, resolution: int) -> TrainingImages:
    """Read ``crops/*.png`` and matching ``masks/*.png`` of a prepared face folder, square at ``resolution``."""
    crops_dir = Path(dataset_dir) / "crops"
    masks_dir = Path(dataset_dir) / "masks"
    crop_paths = sorted(p for p in crops_dir.glob("*.png") if not p.name.startswith("."))
    if not crop_paths:
        raise InputError(
            f"No face crops in {crops_dir}: prepare the photos first (the face step keeps only usable faces)."
        )
    images: list[Image.Image] = []
    masks: list[Image.Image | None] = []
    for path in crop_paths:
        try:
            with Image.open(path) as raw:
                image = raw.convert("RGB")
        except (OSError, ValueError) as exc:
            raise InputError(f"Face crop {path.name} cannot be read ({exc}); prepare the photos again.") from exc
        images.append(_square(image, resolution, Image.Resampling.LANCZOS))
        mask_path = masks_dir / path.name
        if mask_path.is_file():
            with Image.open(mask_path) as raw_mask:
                masks.append(_square(raw_mask.convert("L"), resolution, Image.Resampling.BILINEAR))
        else:
            masks.append(None)
    return TrainingImages(images, masks, [p.stem for p in crop_paths])


def _square(image: Image.Image, size: int, resample: Image.Resampling) -> Image.Image:
    return ImageOps.fit(image, (size, size), method=resample, centering=(0.5, 0.5))


def _pixels(images: list[Image.Image]) -> torch.Tensor:
    array = np.stack([np.asarray(img, dtype=np.float32) / 127.5 - 1.0 for img in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


def tokenize(tokenizer: Any, text: str) -> torch.Tensor:
    return tokenizer(
        text, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


@torch.no_grad()
def encode_dataset(
    images: TrainingImages,
    vae: Any,
    text_encoder: Any,
    tokenizer: Any,
    caption: str | list[str],
    *,
    flip: bool,
    mask_loss: bool,
    mask_background_weight: float,
    encode_text: bool = True,
) -> LatentDataset:
    """Encode every crop (and its mirror when ``flip``) with the VAE, and each caption once."""
    device = next(vae.parameters()).device
    dtype = next(vae.parameters()).dtype
    views = list(images.images)
    view_masks = list(images.masks)
    if flip:
        views += [ImageOps.mirror(img) for img in images.images]
        view_masks += [ImageOps.mirror(m) if m is not None else None for m in images.masks]
    means, stds = [], []
    for start in range(0, len(views), ENCODE_BATCH):
        pixels = _pixels(views[start:start + ENCODE_BATCH]).to(device=device, dtype=dtype)
        dist = vae.encode(pixels).latent_dist
        means.append(dist.mean.float().cpu())
        stds.append(dist.std.float().cpu())
    mean = torch.cat(means)
    std = torch.cat(stds)
    weights = _loss_weights(view_masks, mean.shape[-2:], mask_background_weight) if mask_loss else None
    captions = [caption] if isinstance(caption, str) else list(caption)
    input_ids = torch.cat([tokenize(tokenizer, text) for text in captions])
    text_embeddings = None
    if encode_text:
        te_device = next(text_encoder.parameters()).device
        text_embeddings = text_encoder(input_ids.to(te_device))[0].float().cpu()
    return LatentDataset(
        mean=mean,
        std=std,
        weights=weights,
        input_ids=input_ids,
        text_embeddings=text_embeddings,
        scaling_factor=float(getattr(vae.config, "scaling_factor", 0.18215)),
        n_images=len(images.images),
    )


def _loss_weights(masks: list[Image.Image | None], latent_hw: torch.Size, background: float) -> torch.Tensor:
    """Per-latent-pixel loss weights: 1 on the face/hair mask, ``background`` elsewhere (1 without a mask)."""
    h, w = int(latent_hw[0]), int(latent_hw[1])
    out = []
    for mask in masks:
        if mask is None:
            out.append(torch.ones(1, h, w))
            continue
        small = np.asarray(mask.resize((w, h), Image.Resampling.BOX), dtype=np.float32) / 255.0
        out.append(torch.from_numpy(background + (1.0 - background) * small).unsqueeze(0))
    return torch.stack(out)
