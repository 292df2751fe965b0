"""Motion models for Animate, loaded into the shared model cache and assembled into AnimateDiff pipelines.

Cache layout (measured facts: ARCHITECTURE.md, section 2):

- ``base:vae``, ``base:text_encoder``, ``base:tokenizer`` are the *same objects* Stylize uses.
- ``base+motion_adapter:unet_motion`` (and ``base+animatediff_lightning:unet_motion`` for Fast mode) is a
  ``UNetMotionModel`` of its own: ``from_pipe``/``from_unet2d`` copy the spatial weights anyway (0 of 390
  tensors shared), so sharing the base UNet was never possible. It is built from a base UNet read fresh
  from disk, never from the cached ``base:unet``, because that one may carry a Stylize request's unfused
  peft LoRA, and ``from_pipe`` then fails with "Error(s) in loading state_dict for ModuleList".
- The MotionAdapter itself is not kept: its weights live inside the motion UNet after the build.

Requests mutate the motion UNet while they run (LoRAs, FreeNoise blocks), so each motion UNet is used by
one request at a time (:func:`motion_pipeline` holds a per-entry lock) and is restored before release.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch

from portrait_studio.errors import MissingWeightsError
from portrait_studio.models.locator import download_command, is_random_weights
from portrait_studio.models.manager import ModelManager

MOTION_ADAPTER_ROLE = "motion_adapter"
LIGHTNING_ROLE = "animatediff_lightning"
LIGHTNING_STEPS = 4  # the role's file is the 4-step distillation
SHARED_COMPONENTS = ("vae", "text_encoder", "tokenizer")
# AnimateDiff v1.5.2 was trained on 16-frame clips: longer videos use FreeNoise windows of this length.
CONTEXT_FRAMES = 16
CONTEXT_STRIDE = 4

_locks_guard = threading.Lock()
_entry_locks: dict[tuple[int, str], threading.Lock] = {}


@dataclass(frozen=True)
class MotionModelInfo:
    key: str
    adapter_role: str
    adapter_id: str
    random_weights: bool


def motion_unet_key(base_role: str = "base", adapter_role: str = MOTION_ADAPTER_ROLE) -> str:
    return f"{base_role}+{adapter_role}:unet_motion"


def motion_info(manager: ModelManager, base_role: str = "base", fast: bool = False) -> MotionModelInfo:
    adapter_role = LIGHTNING_ROLE if fast else MOTION_ADAPTER_ROLE
    path = manager.locator.path(adapter_role)
    return MotionModelInfo(
        motion_unet_key(base_role, adapter_role),
        adapter_role,
        manager.locator.source_description(adapter_role),
        is_random_weights(path),
    )


def fast_available(manager: ModelManager) -> bool:
    """True when the Lightning weights (and the adapter config they need) are on disk: the UI's Fast switch."""
    return manager.locator.is_available(LIGHTNING_ROLE) and manager.locator.is_available(MOTION_ADAPTER_ROLE)


# ---- loading ---------------------------------------------------------------------------------------
def load_motion_adapter(manager: ModelManager, adapter_role: str = MOTION_ADAPTER_ROLE) -> Any:
    """A ``MotionAdapter`` for ``adapter_role``: a diffusers folder, or Lightning's bare state dict.

    Lightning ships only weights (the v1.5.2 architecture), so its module is built from the
    ``motion_adapter`` role's config.json and must load with ``strict=True``.
    """
    from diffusers import MotionAdapter

    if adapter_role == MOTION_ADAPTER_ROLE:
        path = manager.locator.path(adapter_role)
        try:
            adapter = MotionAdapter.from_pretrained(str(path), torch_dtype=manager.dtype)
        except (OSError, ValueError) as exc:
            raise MissingWeightsError(adapter_role, str(path), download_command(adapter_role), str(exc)[:160]) from exc
    else:
        from safetensors.torch import load_file

        config_dir = manager.locator.path(MOTION_ADAPTER_ROLE)
        weights = manager.locator.path(adapter_role)
        try:
            config = json.loads((config_dir / "config.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise MissingWeightsError(
                MOTION_ADAPTER_ROLE, str(config_dir), download_command(MOTION_ADAPTER_ROLE), "config.json unreadable"
            ) from exc
        with torch.device("meta"):  # no random init of ~450M parameters that are overwritten next
            adapter = MotionAdapter.from_config(config)
        try:
            adapter.load_state_dict(load_file(str(weights)), strict=True, assign=True)
        except (OSError, RuntimeError) as exc:
            raise MissingWeightsError(
                adapter_role, str(weights), download_command(adapter_role),
                "the file does not match the AnimateDiff v1.5.2 motion adapter: " + str(exc).splitlines()[0][:120],
            ) from exc
        adapter.to(dtype=manager.dtype)
    adapter.requires_grad_(False)
    adapter.eval()
    return adapter


def load_clean_base_unet(manager: ModelManager, base_role: str = "base") -> Any:
    """The base UNet read from disk: guaranteed LoRA-free, whatever Stylize is doing with ``base:unet``."""
    from diffusers import UNet2DConditionModel

    path = manager.locator.path(base_role)
    return UNet2DConditionModel.from_pretrained(str(path), subfolder="unet", torch_dtype=manager.dtype)


def build_motion_unet(manager: ModelManager, base_role: str = "base", adapter_role: str = MOTION_ADAPTER_ROLE) -> Any:
    from diffusers import UNetMotionModel

    adapter = load_motion_adapter(manager, adapter_role)
    base_unet = load_clean_base_unet(manager, base_role)
    motion_unet = UNetMotionModel.from_unet2d(base_unet, adapter)
    del base_unet, adapter  # their weights were copied; keep one resident copy only (dtype follows the UNet's)
    motion_unet.requires_grad_(False)
    motion_unet.eval()
    return motion_unet


def motion_unet(manager: ModelManager, base_role: str = "base", adapter_role: str = MOTION_ADAPTER_ROLE) -> Any:
    """The cached motion UNet for ``base_role`` + ``adapter_role`` (built once)."""
    key = motion_unet_key(base_role, adapter_role)
    return manager.cache.get(key, lambda: build_motion_unet(manager, base_role, adapter_role))


def shared_sd_components(manager: ModelManager, base_role: str = "base") -> dict[str, Any]:
    """VAE, text encoder and tokenizer under the same cache keys Stylize uses (so: the same objects)."""
    return manager.sd_components(base_role, SHARED_COMPONENTS)


# ---- schedulers ------------------------------------------------------------------------------------
def animate_scheduler(manager: ModelManager, base_role: str = "base", fast: bool = False) -> Any:
    """A fresh scheduler: DDIM with AnimateDiff's linear betas, or Lightning's trailing Euler."""
    from diffusers import DDIMScheduler, EulerDiscreteScheduler

    config = manager.fresh_scheduler(base_role, "DDIM").config
    if fast:
        return EulerDiscreteScheduler.from_config(config, timestep_spacing="trailing", beta_schedule="linear")
    return DDIMScheduler.from_config(
        config, beta_schedule="linear", clip_sample=False, timestep_spacing="linspace", steps_offset=1
    )


# ---- pipelines -------------------------------------------------------------------------------------
def _entry_lock(manager: ModelManager, key: str) -> threading.Lock:
    with _locks_guard:
        return _entry_locks.setdefault((id(manager.cache), key), threading.Lock())


@contextmanager
def motion_pipeline(
    manager: ModelManager, kind: str = "txt2vid", base_role: str = "base", fast: bool = False
) -> Iterator[Any]:
    """An ``AnimateDiffPipeline`` (``txt2vid``) or ``AnimateDiffVideoToVideoPipeline`` (``vid2vid``) over
    cached components, locked on the device and owned by this request for the ``with`` block."""
    from diffusers import AnimateDiffPipeline, AnimateDiffVideoToVideoPipeline

    classes = {"txt2vid": AnimateDiffPipeline, "vid2vid": AnimateDiffVideoToVideoPipeline}
    adapter_role = LIGHTNING_ROLE if fast else MOTION_ADAPTER_ROLE
    shared_sd_components(manager, base_role)
    motion_unet(manager, base_role, adapter_role)
    key = motion_unet_key(base_role, adapter_role)
    keys = [f"{base_role}:{name}" for name in SHARED_COMPONENTS] + [key]
    with _entry_lock(manager, key), manager.cache.use(*keys) as parts:
        pipe = classes[kind](
            vae=parts[f"{base_role}:vae"],
            text_encoder=parts[f"{base_role}:text_encoder"],
            tokenizer=parts[f"{base_role}:tokenizer"],
            unet=parts[key],
            motion_adapter=None,  # its weights are inside the motion UNet already
            scheduler=animate_scheduler(manager, base_role, fast),
            feature_extractor=None,
            image_encoder=None,
        )
        pipe.set_progress_bar_config(disable=True)
        yield pipe


@contextmanager
def free_noise(pipe: Any, frames: int) -> Iterator[bool]:
    """FreeNoise sliding context windows for clips longer than the motion module's training length.

    Enable *before* loading LoRAs (FreeNoise rebuilds transformer blocks from a strict state dict, which
    peft-wrapped layers would break) and disable after they are gone, so the cached UNet goes back clean.
    Yields whether FreeNoise is on.
    """
    if frames <= CONTEXT_FRAMES:
        yield False
        return
    # FreeNoise reads only the adapter's max sequence length; the motion UNet's config carries it, so a
    # config stand-in avoids keeping a second copy of the motion weights resident.
    max_len = int(pipe.unet.config.get("motion_max_seq_length") or 32)
    object.__setattr__(pipe, "motion_adapter", SimpleNamespace(config=SimpleNamespace(motion_max_seq_length=max_len)))
    pipe.enable_free_noise(context_length=CONTEXT_FRAMES, context_stride=CONTEXT_STRIDE)
    try:
        yield True
    finally:
        pipe.disable_free_noise()


# Split inference: spatial layers see this many frames at a time (the 2 x frames batch of guidance otherwise),
# motion layers this many pixels' worth of frame sequences. diffusers' defaults.
SPLIT_FRAMES = 16
SPLIT_PIXELS = 256


@contextmanager
def split_inference(pipe: Any, frames: int) -> Iterator[bool]:
    """FreeNoise's memory saver for long clips: spatial layers run ``SPLIT_FRAMES`` frames at a time.

    Without it a 64-frame clip at 512 px sends a batch of 128 images through every ResNet and attention
    layer. diffusers wraps the UNet's layers in ``SplitInferenceModule`` and has no way back, and the motion
    UNet is a shared cache entry: the wrappers are removed again on the way out, also after a failure.
    Enter it *after* LoRAs are loaded (the wrappers change module paths that LoRA keys name) and leave it
    before they are unloaded. Yields whether it is on.
    """
    if frames <= CONTEXT_FRAMES:
        yield False
        return
    try:
        pipe.enable_free_noise_split_inference(spatial_split_size=SPLIT_PIXELS, temporal_split_size=SPLIT_FRAMES)
        yield True
    finally:
        unwrap_split_inference(pipe.unet)


def unwrap_split_inference(module: torch.nn.Module) -> int:
    """Put every layer that diffusers wrapped for split inference back in its place; returns how many."""
    from diffusers.pipelines.free_noise_utils import SplitInferenceModule

    restored = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            while isinstance(child, SplitInferenceModule):
                child = child.module
                setattr(parent, name, child)
                restored += 1
    return restored


@contextmanager
def vae_memory_savers(vae: Any, enabled: bool = True) -> Iterator[None]:
    """VAE slicing and tiling for this request, restored afterwards (the VAE is shared with Stylize)."""
    previous = (getattr(vae, "use_slicing", False), getattr(vae, "use_tiling", False))
    if enabled:
        vae.use_slicing, vae.use_tiling = True, True
    try:
        yield
    finally:
        vae.use_slicing, vae.use_tiling = previous


def module_is_clean(module: torch.nn.Module) -> bool:
    """No peft adapter layers left in ``module`` (what a request must leave behind)."""
    return not any("lora_" in name for name, _ in module.named_parameters())


def drop_motion_unet(manager: ModelManager, base_role: str = "base", fast: bool = False) -> None:
    """Forget a motion UNet that could not be restored (rebuilt clean on next use)."""
    adapter_role = LIGHTNING_ROLE if fast else MOTION_ADAPTER_ROLE
    manager.cache.remove(motion_unet_key(base_role, adapter_role))
