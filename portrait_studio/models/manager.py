"""The model manager: one per app. Resolves roles, loads components into the cache, builds pipelines.

Pipelines are assembled per request from cached components with a *fresh scheduler* each time
(schedulers hold per-run state and are not thread-safe), following diffusers' ``Pipeline(**components)``.

Creating a manager imports no torch: the device, dtype and cache are made on first use, so the app
shows its first page without loading torch (it costs seconds) and the first job pays for it instead.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portrait_studio.config import Settings
from portrait_studio.errors import InputError, MissingWeightsError
from portrait_studio.models.loadguard import guard_weights_file
from portrait_studio.models.locator import ModelLocator, download_command, is_random_weights

if TYPE_CHECKING:
    import torch

    from portrait_studio.models.cache import ModelCache

SD_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer")

SCHEDULERS = {
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "DDIM": ("DDIMScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
}
DEFAULT_SCHEDULER = "DPM++ 2M Karras"


@dataclass(frozen=True)
class ModelInfo:
    """What a service needs to know about a loaded model besides its weights."""

    role: str
    path: Path
    random_weights: bool
    default_size: int
    base_id: str


class ModelManager:
    def __init__(
        self, settings: Settings, cache: ModelCache | None = None, cache_factory: Callable[[], ModelCache] | None = None
    ) -> None:
        """``cache``: a cache to use; ``cache_factory``: one to make on first use (the process's cache);
        neither: a cache of this manager's own, made on first use."""
        self.settings = settings
        self.locator = ModelLocator(settings)
        self._cache = cache
        self._cache_factory = cache_factory
        self._device: torch.device | None = None
        self._dtype: torch.dtype | None = None
        self._torch_lock = threading.RLock()  # re-entered: dtype and cache ask for the device

    # ---- device, dtype and cache: made on first use (they import torch) -------------------------
    @property
    def device(self) -> torch.device:
        if self._device is None:
            from portrait_studio.models.devices import pick_device

            with self._torch_lock:
                if self._device is None:
                    self._device = pick_device(self.settings.device)
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        if self._dtype is None:
            from portrait_studio.models.devices import pick_dtype

            with self._torch_lock:
                if self._dtype is None:
                    self._dtype = pick_dtype(self.device, self.settings.dtype)
        return self._dtype

    @property
    def cache(self) -> ModelCache:
        if self._cache is None:
            from portrait_studio.models.cache import ModelCache
            from portrait_studio.models.devices import GIB, device_budget_for

            device = self.device
            with self._torch_lock:
                if self._cache is None and self._cache_factory is not None:
                    self._cache = self._cache_factory()
                if self._cache is None:
                    self._cache = ModelCache(
                        device, device_budget_for(self.settings, device), ram_budget=int(self.settings.cache_gb * GIB)
                    )
        return self._cache

    def unload_all(self) -> list[str]:
        """Drop every unlocked model (training needs the whole device); before first use nothing is loaded."""
        return self._cache.unload_all() if self._cache is not None else []

    # ---- Stable Diffusion components ------------------------------------------------------------
    def sd_info(self, role: str = "base") -> ModelInfo:
        path = self.locator.path(role)
        unet_config = _read_json(path / "unet" / "config.json", role)
        vae_config = _read_json(path / "vae" / "config.json", role)
        vae_scale = 2 ** (len(vae_config.get("block_out_channels", [0, 0, 0, 0])) - 1)
        return ModelInfo(
            role=role,
            path=path,
            random_weights=is_random_weights(path),
            default_size=int(unet_config.get("sample_size", 64)) * vae_scale,
            base_id=self.locator.source_description(role),
        )

    def sd_components(self, role: str = "base", names: Sequence[str] = SD_COMPONENTS) -> dict[str, Any]:
        """Load (once) and return SD components of ``role`` from the cache, keyed by name.

        Every user of a component goes through here, so Stylize, Animate and training share one object.
        """
        loaders = self.sd_loaders(role, names)
        return {name: self.cache.get(f"{role}:{name}", loaders[f"{role}:{name}"]) for name in names}

    def sd_loaders(self, role: str = "base", names: Sequence[str] = SD_COMPONENTS) -> dict[str, Any]:
        """Loaders of ``role``'s SD components by cache key, for ``cache.use(*keys, loaders=...)``: loading
        and locking in one step, so an ``unload_all`` in between cannot drop what a request is about to use."""
        path = self.locator.path(role)
        return {f"{role}:{name}": (lambda n=name: self._load_sd_part(path, n, role)) for name in names}

    def _load_sd_part(self, path: Path, name: str, role: str = "base") -> Any:
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if name == "tokenizer":
            with guard_weights_file(role, path / "tokenizer", download_command(role)):
                return CLIPTokenizer.from_pretrained(str(path), subfolder="tokenizer")
        variant = self.locator.variant(role, path / name)
        stem = "model" if name == "text_encoder" else "diffusion_pytorch_model"
        weights = path / name / (f"{stem}.{variant}.safetensors" if variant else f"{stem}.safetensors")
        loaders = {"unet": UNet2DConditionModel, "vae": AutoencoderKL, "text_encoder": CLIPTextModel}
        with guard_weights_file(role, weights, download_command(role)):
            model = loaders[name].from_pretrained(str(path), subfolder=name, torch_dtype=self.dtype, variant=variant)
        model.requires_grad_(False)
        model.eval()
        return model

    def preload(self, role: str = "base") -> list[str]:
        """Load ``role``'s components and place them on the execution device now, not on first request.

        ZeroGPU Spaces want models on ``cuda`` at start-up (the ``spaces`` package keeps them there between
        calls); elsewhere it simply makes the first request warm. Returns the cache keys placed.
        """
        loaders = self.sd_loaders(role)
        keys = list(loaders)
        with self.cache.use(*keys, loaders=loaders):
            pass
        return keys

    def fresh_scheduler(self, role: str = "base", name: str = DEFAULT_SCHEDULER) -> Any:
        import diffusers

        if name not in SCHEDULERS:
            raise InputError(f"Unknown sampler '{name}'. Choose one of: {', '.join(SCHEDULERS)}.")
        class_name, extra = SCHEDULERS[name]
        path = self.locator.path(role)
        config = _read_json(path / "scheduler" / "scheduler_config.json", role)
        return getattr(diffusers, class_name).from_config(config, **extra)

    @contextmanager
    def sd_pipeline(self, kind: str = "txt2img", role: str = "base", sampler: str = DEFAULT_SCHEDULER,
                    **extra_components: Any) -> Iterator[Any]:
        """Build a pipeline from cached components, locked on the device for the ``with`` block."""
        from diffusers import (
            StableDiffusionControlNetInpaintPipeline,
            StableDiffusionImg2ImgPipeline,
            StableDiffusionInpaintPipeline,
            StableDiffusionPipeline,
        )

        classes = {
            "txt2img": StableDiffusionPipeline,
            "img2img": StableDiffusionImg2ImgPipeline,
            "inpaint": StableDiffusionInpaintPipeline,
            # needs controlnet=<ControlNetModel> in extra_components (Stylize template portraits)
            "controlnet_inpaint": StableDiffusionControlNetInpaintPipeline,
        }
        if kind not in classes:
            raise InputError(f"Unknown pipeline kind '{kind}'. Choose one of: {', '.join(classes)}.")
        loaders = self.sd_loaders(role)
        keys = list(loaders)
        with self.cache.use(*keys, loaders=loaders) as parts:
            components = {name: parts[f"{role}:{name}"] for name in SD_COMPONENTS}
            pipe = classes[kind](
                **components,
                **extra_components,
                scheduler=self.fresh_scheduler(role, sampler),
                safety_checker=None,
                feature_extractor=None,
                requires_safety_checker=False,
            )
            pipe.set_progress_bar_config(disable=True)
            from portrait_studio.models.placement import placement_kept  # torch

            with placement_kept([*components.values(), *extra_components.values()]):
                yield pipe

    def check_available(self, roles: list[str]) -> list[MissingWeightsError]:
        """Missing-weight errors for ``roles`` without downloading (for the UI's status lines)."""
        problems = []
        for role in roles:
            if self.locator.is_available(role):
                continue
            try:
                self.locator.path(role, download=False)
            except MissingWeightsError as exc:
                problems.append(exc)
        return problems


def _read_json(path: Path, role: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise MissingWeightsError(role, str(path.parent), download_command(role), f"{path.name} missing") from None
    except json.JSONDecodeError as exc:
        raise MissingWeightsError(role, str(path), download_command(role), f"{path.name} is not valid JSON") from exc


def generator_for(device: torch.device, seed: int) -> torch.Generator:
    import torch

    # CPU generators make seeds reproducible across devices (diffusers' own advice).
    return torch.Generator("cpu").manual_seed(int(seed))
