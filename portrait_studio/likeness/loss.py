"""The loss of one micro-batch: precomputed latents in, only the UNet (and a trained text encoder) runs."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F

from portrait_studio.likeness.config import TrainingConfig
from portrait_studio.likeness.dataset import LatentDataset
from portrait_studio.likeness.setup import Precision


def micro_batch_loss(unet: torch.nn.Module, text_encoder: torch.nn.Module | None, data: LatentDataset,
                     noise_scheduler: Any, generator: torch.Generator, config: TrainingConfig,
                     device: torch.device, precision: Precision) -> torch.Tensor:
    """One micro-batch: sample precomputed latents (and flips), add noise, run only the UNet."""
    index = torch.randint(len(data), (config.batch_size,), generator=generator)
    mean, std = data.mean[index], data.std[index]
    latents = (mean + std * torch.randn(mean.shape, generator=generator)) * data.scaling_factor
    noise = torch.randn(latents.shape, generator=generator)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (config.batch_size,), generator=generator)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    if noise_scheduler.config.prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, timesteps)
    else:
        target = noise
    dtype = precision.weight_dtype
    captions = int(data.input_ids.shape[0])
    # One caption: no extra draw, so single-caption runs keep their random stream.
    which = (torch.randint(captions, (config.batch_size,), generator=generator) if captions > 1
             else torch.zeros(config.batch_size, dtype=torch.long))
    if text_encoder is not None:
        encoder_states = text_encoder(data.input_ids[which].to(device))[0]
    else:
        encoder_states = data.text_embeddings[which].to(device)
    autocast = (torch.autocast(device_type=device.type, dtype=precision.autocast_dtype)
                if precision.autocast_dtype else nullcontext())
    with autocast:
        noisy = noisy.to(device, dtype).contiguous(memory_format=torch.channels_last)  # the UNet's layout
        pred = unet(noisy, timesteps.to(device), encoder_states.to(dtype)).sample
    squared = F.mse_loss(pred.float(), target.to(device), reduction="none")
    if data.weights is None:
        return squared.mean()
    weights = data.weights[index].to(device)
    return (squared * weights).mean() / weights.mean()
