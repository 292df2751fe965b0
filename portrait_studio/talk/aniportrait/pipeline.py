"""Landmark images -> video frames: AniPortrait's pose-to-video pipeline on our networks.

As the reference ``Pose2VideoPipeline`` (pipeline_pose2vid_long): the portrait's CLIP image embedding
(zeros for the unconditional branch) conditions both UNets; the ReferenceNet runs once on the portrait's
VAE latents (mean of the posterior, times 0.18215) at timestep 0 and its self-attention inputs are read by
the denoising UNet; the PoseGuider turns each frame's landmark image (in [-1, 1]) into the pose features;
DDIM (v-prediction, zero terminal SNR, trailing) denoises all frames in overlapping 16-frame windows; the
VAE decodes frame by frame. The PoseGuider's features of a window do not change between steps, so we
compute them once per window instead of once per step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from portrait_studio.progress import CancelToken, ProgressFn, no_progress, scaled
from portrait_studio.talk.aniportrait.nets import AniPortraitNets
from portrait_studio.talk.aniportrait.reference_attention import reading, recording
from portrait_studio.talk.aniportrait.sampling import denoise, published_scheduler

LATENT_SCALE = 0.18215
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _unit_range(images: np.ndarray) -> torch.Tensor:
    """uint8 (n, h, w, 3) -> float (n, 3, h, w) in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def clip_pixels(image: np.ndarray, size: int) -> torch.Tensor:
    """The reference resizes the portrait to 224 and normalises with CLIP's mean and std."""
    from PIL import Image

    resized = np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0
    pixels = (resized - np.array(CLIP_MEAN, np.float32)) / np.array(CLIP_STD, np.float32)
    return torch.from_numpy(pixels).permute(2, 0, 1)[None]


@torch.no_grad()
def render(
    nets: AniPortraitNets,
    vae: Any,
    image_encoder: Any,
    portrait: np.ndarray,
    pose_images: np.ndarray,
    steps: int = 25,
    guidance_scale: float = 3.5,
    seed: int = 42,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """portrait (h, w, 3) uint8 and landmark images (f, h, w, 3) uint8 of the same size -> (f, h, w, 3) uint8."""
    cancel = cancel or CancelToken()
    device, dtype = next(nets.denoising_unet.parameters()).device, next(nets.denoising_unet.parameters()).dtype
    guided = guidance_scale > 1.0
    clip_size = image_encoder.config.image_size
    embeds = image_encoder(clip_pixels(portrait, clip_size).to(device, dtype)).image_embeds[:, None]
    embeds = torch.cat([torch.zeros_like(embeds), embeds]) if guided else embeds
    reference = vae.encode(_unit_range(portrait[None]).to(device, dtype)).latent_dist.mean * LATENT_SCALE
    poses = _unit_range(pose_images).to(device, dtype).permute(1, 0, 2, 3)[None]  # (1, 3, f, h, w)
    frames, height, width = pose_images.shape[:3]
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn((1, 4, frames, height // 8, width // 8), generator=generator).to(device, dtype)
    with recording(nets.reference_net) as bank:
        batch = 2 if guided else 1
        nets.reference_net(reference.repeat(batch, 1, 1, 1), 0, encoder_hidden_states=embeds)
    pose_features: dict[tuple[int, ...], list[torch.Tensor]] = {}

    def predict(x: torch.Tensor, t: torch.Tensor, window: list[int]) -> torch.Tensor:
        key = tuple(window)
        if key not in pose_features:
            pose_features[key] = nets.pose_guider(poses[:, :, window].repeat(x.shape[0], 1, 1, 1, 1))
        return nets.denoising_unet(x, t, embeds[: x.shape[0]], pose_features[key])

    with reading(nets.denoising_unet.unet, bank, guided):
        latents = denoise(latents, published_scheduler(), steps, predict, guidance_scale,
                          scaled(progress, 0.0, 0.9), cancel, generator)
    out = []
    for i in range(frames):
        cancel.raise_if_cancelled()
        image = vae.decode(latents[:, :, i] / LATENT_SCALE).sample
        out.append(((image / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)[0].permute(1, 2, 0).cpu().numpy())
        progress(0.9 + 0.1 * (i + 1) / frames, f"decoding frame {i + 1}/{frames}")
    return np.stack(out)
