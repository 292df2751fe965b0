"""Motion models for Animate, loaded into the shared model cache and assembled into AnimateDiff pipelines.

Cache layout:

- ``base:vae``, ``base:text_encoder``, ``base:tokenizer`` are the *same objects* Stylize uses.
- ``base+<adapter role>:unet_motion`` is a ``UNetMotionModel`` per motion module (v1.5.2
  ``motion_adapter``, v1.5.3 ``motion_adapter_v3``, ``animatediff_lightning``) whose spatial layers hold
  the *same parameter tensors* as the cached ``base:unet`` (one copy of the ~1.7 GB of spatial weights);
  only the motion modules are its own. diffusers' ``from_pipe``/``from_unet2d`` would copy them
  (measured: 0 of 390 tensors shared), so the motion UNet is built on the meta device and its parameters
  are assigned: the adapter's motion modules, and the base UNet's spatial ``Parameter`` objects. Sharing
  is safe because GPU requests are serialised, LoRAs are removed after every request (fused ones restored
  bit for bit), and modules are separate objects: peft wraps layers in one model tree, never both.
  The cache knows (``shares=("base:unet",)``): using a motion UNet also locks the base UNet on the device.
- ``sparsectrl_<rgb|scribble>:controlnet``: SparseCtrl keyframe encoders for the v3 module.

Which module each mode uses (:func:`adapter_role_for`): SparseCtrl keyframes need v3 (+ its domain adapter
LoRA); the camera-motion LoRAs were trained on v1.5.2, so a request with camera motion uses v1.5.2; text and
video-to-video without camera motion use v3 + domain adapter; Fast mode uses Lightning (v1.5.2 shapes).

Requests mutate the motion UNet while they run (LoRAs, FreeNoise blocks), so the motion UNets of one base
are used by one request at a time (:func:`motion_pipeline` holds a lock per base UNet) and are restored
before release.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from portrait_studio.errors import MissingWeightsError
from portrait_studio.models.locator import download_command, is_random_weights
from portrait_studio.models.manager import ModelManager

if TYPE_CHECKING:  # torch is imported where a model is built: the UI reads fast_available() without it
    import torch

MOTION_ADAPTER_ROLE = "motion_adapter"  # v1.5.2: the camera-motion LoRAs belong to it
V3_ROLE = "motion_adapter_v3"
DOMAIN_ADAPTER_ROLE = "domain_adapter_v3"
DOMAIN_ADAPTER_WEIGHT = 1.0  # diffusers' SparseCtrl example fuses it at scale 1.0
SPARSECTRL_ROLES = {"rgb": "sparsectrl_rgb", "scribble": "sparsectrl_scribble"}
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


def adapter_role_for(kind: str, has_camera_motion: bool, fast: bool = False) -> str:
    """The motion module a request uses (see the module docstring for why)."""
    if fast:
        return LIGHTNING_ROLE
    if kind == "sparsectrl":
        return V3_ROLE
    return MOTION_ADAPTER_ROLE if has_camera_motion else V3_ROLE


def v3_available(manager: ModelManager) -> bool:
    """True when the v3 motion module and its domain adapter are on disk (no download attempted)."""
    return manager.locator.is_available(V3_ROLE) and manager.locator.is_available(DOMAIN_ADAPTER_ROLE)


def uses_domain_adapter(adapter_role: str) -> bool:
    return adapter_role == V3_ROLE


def motion_info(manager: ModelManager, base_role: str = "base", adapter_role: str = MOTION_ADAPTER_ROLE
                ) -> MotionModelInfo:
    path = manager.locator.path(adapter_role)
    return MotionModelInfo(
        motion_unet_key(base_role, adapter_role),
        adapter_role,
        manager.locator.source_description(adapter_role),
        is_random_weights(path),
    )


def fast_available(manager: ModelManager) -> bool:
    """True when the Lightning weights (and the adapter config they need) are on disk: the UI's Fast switch."""
    return manager.locator.is_available(LIGHTNING_ROLE) and manager.locator.is_available(
        MOTION_ADAPTER_ROLE, config_only=True
    )


# ---- loading ---------------------------------------------------------------------------------------
def load_motion_adapter(manager: ModelManager, adapter_role: str = MOTION_ADAPTER_ROLE) -> Any:
    """A ``MotionAdapter`` for ``adapter_role``: a diffusers folder, or Lightning's bare state dict.

    Lightning ships only weights (the v1.5.2 architecture), so its module is built from the
    ``motion_adapter`` role's config.json and must load with ``strict=True``.
    """
    from diffusers import MotionAdapter

    if adapter_role != LIGHTNING_ROLE:
        path = manager.locator.path(adapter_role)
        try:
            adapter = MotionAdapter.from_pretrained(
                str(path), torch_dtype=manager.dtype, variant=manager.locator.variant(adapter_role, path)
            )
        except (OSError, ValueError) as exc:
            raise MissingWeightsError(adapter_role, str(path), download_command(adapter_role), str(exc)[:160]) from exc
    else:
        import torch
        from safetensors.torch import load_file

        config_dir = manager.locator.path(MOTION_ADAPTER_ROLE, config_only=True)
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
    """The base UNet read from disk: guaranteed LoRA-free (tests compare the shared weights against it)."""
    from diffusers import UNet2DConditionModel

    path = manager.locator.path(base_role)
    variant = manager.locator.variant(base_role, path / "unet")
    return UNet2DConditionModel.from_pretrained(str(path), subfolder="unet", torch_dtype=manager.dtype, variant=variant)


def spatial_parameters(unet: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """The UNet's own parameters by their plain names, also while a peft LoRA is loaded on it
    (``to_q.base_layer.weight`` -> ``to_q.weight``; the LoRA's ``lora_A``/``lora_B`` are left out)."""
    shared = {}
    for name, parameter in unet.named_parameters(remove_duplicate=False):
        if ".lora_" in name or "lora_magnitude" in name:
            continue
        shared[name.replace(".base_layer.", ".")] = parameter
    return shared


def build_motion_unet(manager: ModelManager, base_role: str = "base", adapter_role: str = MOTION_ADAPTER_ROLE) -> Any:
    """A ``UNetMotionModel`` holding the cached base UNet's spatial parameters and the adapter's motion modules."""
    import torch
    from diffusers import UNetMotionModel

    adapter = load_motion_adapter(manager, adapter_role)
    base_unet = manager.sd_components(base_role, ("unet",))["unet"]
    with torch.device("meta"):  # no allocation: every tensor is assigned below
        motion_unet = UNetMotionModel.from_unet2d(base_unet, adapter, load_weights=False)
    expected = set(motion_unet.state_dict())
    spatial = {k: v for k, v in spatial_parameters(base_unet).items() if k in expected}
    motion = {k: v for k, v in adapter.state_dict(keep_vars=True).items() if k in expected}
    missing = expected - spatial.keys() - motion.keys()
    if missing:
        raise MissingWeightsError(
            adapter_role, manager.locator.source_description(adapter_role), download_command(adapter_role),
            f"the motion module does not fit the base UNet ({len(missing)} tensors unmatched, e.g. {min(missing)})",
        )
    # assign=True keeps the given tensors: the spatial ones stay the base UNet's own Parameter objects.
    motion_unet.load_state_dict({**spatial, **motion}, strict=True, assign=True)
    left_on_meta = [name for name, t in [*motion_unet.named_parameters(), *motion_unet.named_buffers()] if t.is_meta]
    if left_on_meta:
        raise RuntimeError(f"motion UNet tensors left unassigned: {left_on_meta[:3]}")
    del adapter
    motion_unet.eval()
    return motion_unet


def motion_unet(manager: ModelManager, base_role: str = "base", adapter_role: str = MOTION_ADAPTER_ROLE) -> Any:
    """The cached motion UNet for ``base_role`` + ``adapter_role`` (built once, sharing ``base:unet``)."""
    manager.sd_components(base_role, ("unet",))
    key = motion_unet_key(base_role, adapter_role)
    return manager.cache.get(
        key, lambda: build_motion_unet(manager, base_role, adapter_role), shares=(f"{base_role}:unet",)
    )


def sparsectrl_key(kind: str = "rgb") -> str:
    return f"{SPARSECTRL_ROLES[kind]}:controlnet"


def sparse_controlnet(manager: ModelManager, kind: str = "rgb") -> Any:
    """The cached SparseCtrl encoder (``rgb``: keyframe images, ``scribble``: sketches)."""
    return manager.cache.get(sparsectrl_key(kind), lambda: _load_sparse_controlnet(manager, kind))


def _load_sparse_controlnet(manager: ModelManager, kind: str) -> Any:
    from diffusers import SparseControlNetModel

    role = SPARSECTRL_ROLES[kind]
    path = manager.locator.path(role)
    try:
        model = SparseControlNetModel.from_pretrained(str(path), torch_dtype=manager.dtype)
    except (OSError, ValueError) as exc:
        raise MissingWeightsError(role, str(path), download_command(role), str(exc)[:160]) from exc
    model.requires_grad_(False)
    model.eval()
    return model


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
    manager: ModelManager, kind: str = "txt2vid", base_role: str = "base", fast: bool = False,
    adapter_role: str | None = None, control: str = "rgb",
) -> Iterator[Any]:
    """An ``AnimateDiffPipeline`` (``txt2vid``), ``AnimateDiffVideoToVideoPipeline`` (``vid2vid``) or
    ``AnimateDiffSparseControlNetPipeline`` (``sparsectrl``, with the ``control`` encoder) over cached
    components, locked on the device and owned by this request for the ``with`` block.

    ``adapter_role`` defaults to v1.5.2 (Lightning with ``fast``; v3 for ``sparsectrl``).
    """
    from diffusers import AnimateDiffPipeline, AnimateDiffSparseControlNetPipeline, AnimateDiffVideoToVideoPipeline

    classes = {
        "txt2vid": AnimateDiffPipeline,
        "vid2vid": AnimateDiffVideoToVideoPipeline,
        "sparsectrl": AnimateDiffSparseControlNetPipeline,
    }
    if adapter_role is None:
        adapter_role = LIGHTNING_ROLE if fast else V3_ROLE if kind == "sparsectrl" else MOTION_ADAPTER_ROLE
    key = motion_unet_key(base_role, adapter_role)
    base_unet = f"{base_role}:unet"
    # Load and lock in one step; the base UNet comes before the motion UNet that is built on its tensors.
    loaders = {**manager.sd_loaders(base_role, (*SHARED_COMPONENTS, "unet")),
               key: lambda: build_motion_unet(manager, base_role, adapter_role)}
    extra: dict[str, Any] = {}
    if kind == "sparsectrl":
        loaders[sparsectrl_key(control)] = lambda: _load_sparse_controlnet(manager, control)
    # One request at a time per base UNet, not per motion UNet: the motion UNets share its spatial
    # weights, and a LoRA fused into one of them is fused into all of them until the request ends.
    with _entry_lock(manager, base_unet), manager.cache.use(
        *loaders, loaders=loaders, shares={key: (base_unet,)}
    ) as parts:
        if kind == "sparsectrl":
            extra["controlnet"] = parts[sparsectrl_key(control)]
        pipe = classes[kind](
            vae=parts[f"{base_role}:vae"],
            text_encoder=parts[f"{base_role}:text_encoder"],
            tokenizer=parts[f"{base_role}:tokenizer"],
            unet=parts[key],
            motion_adapter=None,  # its weights are inside the motion UNet already
            scheduler=animate_scheduler(manager, base_role, fast),
            feature_extractor=None,
            image_encoder=None,
            **extra,
        )
        pipe.set_progress_bar_config(disable=True)
        # video-to-video upcasts a force_upcast VAE to fp32 and only casts it back when nothing raises
        from portrait_studio.models.placement import placement_kept  # torch

        with placement_kept(parts.values()):
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


def drop_motion_unet(manager: ModelManager, base_role: str = "base", adapter_role: str = MOTION_ADAPTER_ROLE) -> None:
    """Forget a motion UNet that could not be restored (rebuilt clean on next use)."""
    manager.cache.remove(motion_unet_key(base_role, adapter_role))
