"""The AniPortrait engine of the Talk service: portrait + speech -> frames, with the models in the cache.

Cache entries: ``aniportrait:nets`` (PoseGuider, ReferenceNet, motion denoising UNet, audio2mesh, audio2pose
in one container, so they move and are evicted together), ``vae_ft_mse:vae`` and
``aniportrait_image_encoder:image_encoder``. The VAE is a separate entry from Stylize's: AniPortrait uses
``stabilityai/sd-vae-ft-mse``, whose decoder weights differ from the VAE inside SD1.5 (not the same file).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from portrait_studio.models.loadguard import guard_weights_file
from portrait_studio.models.locator import download_command, is_random_weights
from portrait_studio.models.manager import ModelManager
from portrait_studio.progress import CancelToken, ProgressFn, scaled
from portrait_studio.talk.aniportrait import face_mesh, landmark_image, speech
from portrait_studio.talk.aniportrait.nets import AniPortraitNets, load_nets
from portrait_studio.talk.reference_motion import ReferenceMotion

NETS_KEY = "aniportrait:nets"
VAE_KEY = "vae_ft_mse:vae"
ENCODER_KEY = "aniportrait_image_encoder:image_encoder"
ROLES = ("aniportrait", "wav2vec2", "aniportrait_image_encoder", "vae_ft_mse")


class NetsModule(nn.Module):
    """The five networks as one module (the cache sizes and moves modules)."""

    def __init__(self, nets: AniPortraitNets) -> None:
        super().__init__()
        self.pose_guider = nets.pose_guider
        self.reference_net = nets.reference_net
        self.denoising_unet = nets.denoising_unet
        self.audio2mesh = nets.audio2mesh
        self.audio2pose = nets.audio2pose
        self.random_weights = nets.random_weights

    def nets(self) -> AniPortraitNets:
        return AniPortraitNets(self.pose_guider, self.reference_net, self.denoising_unet, self.audio2mesh,
                               self.audio2pose, self.random_weights)


@dataclass
class Loaded:
    nets: AniPortraitNets
    vae: nn.Module
    image_encoder: nn.Module
    random_weights: bool


def _loaders(manager: ModelManager) -> dict[str, object]:
    locator = manager.locator

    def nets() -> nn.Module:
        module = NetsModule(load_nets(locator.path("aniportrait"), locator.path("wav2vec2"),
                                      manager.settings.weights_dir))
        return module.to(manager.dtype)

    def vae() -> nn.Module:
        from diffusers import AutoencoderKL

        path = locator.path("vae_ft_mse")
        with guard_weights_file("vae_ft_mse", path, download_command("vae_ft_mse")):
            return AutoencoderKL.from_pretrained(str(path), torch_dtype=manager.dtype).eval()

    def encoder() -> nn.Module:
        from transformers import CLIPVisionModelWithProjection

        path = locator.path("aniportrait_image_encoder")
        with guard_weights_file("aniportrait_image_encoder", path, download_command("aniportrait_image_encoder")):
            return CLIPVisionModelWithProjection.from_pretrained(
                str(path), subfolder="image_encoder", dtype=manager.dtype).eval()

    return {NETS_KEY: nets, VAE_KEY: vae, ENCODER_KEY: encoder}


def check_available(manager: ModelManager) -> None:
    """Offline and missing weights: one typed error naming the first absent role."""
    problems = manager.check_available(list(ROLES))
    if problems and manager.settings.offline:
        raise problems[0]


@contextmanager
def aniportrait_models(manager: ModelManager) -> Iterator[Loaded]:
    with manager.cache.use(NETS_KEY, VAE_KEY, ENCODER_KEY, loaders=_loaders(manager)) as loaded:
        container = loaded[NETS_KEY]
        random = container.random_weights or any(
            is_random_weights(manager.locator.path(role, download=False)) for role in ROLES[1:])
        yield Loaded(container.nets(), loaded[VAE_KEY], loaded[ENCODER_KEY], random)


def landmark_frames(models: Loaded, samples: np.ndarray, points68: np.ndarray, size: int, frames: int,
                    still: bool, style: int, expression_scale: float = 1.0,
                    motion: ReferenceMotion | None = None) -> np.ndarray:
    """Speech and the crop's 68 points -> (f, size, size, 3) landmark images (the reference pipeline reads no
    landmark image of the portrait itself). A reference video's ``motion`` gives the head poses (instead of
    audio2pose, and whatever ``still`` says) and closes the eyelids when its eyes blink."""
    mesh = face_mesh.reference_mesh(points68, size, size)
    audio = speech.normalise(samples)
    vertices = speech.mesh_sequence(models.nets.audio2mesh, audio, frames, mesh.vertices, expression_scale)
    vertices[:, ~mesh.placed] = mesh.vertices[None, ~mesh.placed]  # undrawn vertices: keep them out of the way
    if motion is not None:
        vertices = face_mesh.close_eyelids(vertices, motion.blinks[:frames])
        poses = motion.poses[:frames]
    elif still:
        poses = np.zeros((frames, 6))
    else:
        poses = speech.pose_sequence(models.nets.audio2pose, audio, frames, style)
    return landmark_image.draw_frames(face_mesh.project(vertices, mesh.transform, poses, size, size), size, size)


def render_clip(models: Loaded, crop: Image.Image, pose_images: np.ndarray, steps: int, seed: int,
                progress: ProgressFn, cancel: CancelToken) -> np.ndarray:
    from portrait_studio.talk.aniportrait.pipeline import render

    return render(models.nets, models.vae, models.image_encoder, np.array(crop.convert("RGB")), pose_images,
                  steps=steps, seed=seed, progress=scaled(progress, 0.0, 1.0), cancel=cancel)


def device_of(models: Loaded) -> torch.device:
    return next(models.nets.denoising_unet.parameters()).device
