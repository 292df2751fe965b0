"""Prompt-to-image generation on the base model, with per-step progress and cancel."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from PIL import Image

from portrait_studio.errors import CancelledError, InputError
from portrait_studio.models.manager import DEFAULT_SCHEDULER, SCHEDULERS, ModelManager, generator_for
from portrait_studio.progress import CancelToken, ProgressFn, no_progress

MAX_SEED = 2**32 - 1


@dataclass
class GenerateRequest:
    prompt: str
    negative_prompt: str = ""
    seed: int | None = None
    steps: int = 25
    guidance: float = 7.0
    width: int | None = None
    height: int | None = None
    n: int = 1
    sampler: str = DEFAULT_SCHEDULER

    def validate(self, default_size: int) -> GenerateRequest:
        if not self.prompt or not self.prompt.strip():
            raise InputError("The prompt is empty: describe the picture you want.")
        if len(self.prompt) > 2000:
            raise InputError(f"The prompt has {len(self.prompt)} characters; keep it under 2000.")
        if not 1 <= self.steps <= 150:
            raise InputError(f"Steps must be between 1 and 150, got {self.steps}.")
        if not 0 <= self.guidance <= 30:
            raise InputError(f"Guidance must be between 0 and 30, got {self.guidance}.")
        if not 1 <= self.n <= 8:
            raise InputError(f"Number of images must be between 1 and 8, got {self.n}.")
        if self.sampler not in SCHEDULERS:
            raise InputError(f"Unknown sampler '{self.sampler}'. Choose one of: {', '.join(SCHEDULERS)}.")
        width = self.width or default_size
        height = self.height or default_size
        for name, value in (("width", width), ("height", height)):
            if not 64 <= value <= 1536 or value % 8:
                raise InputError(f"Image {name} must be a multiple of 8 between 64 and 1536, got {value}.")
        seed = random.randint(0, MAX_SEED) if self.seed is None or self.seed < 0 else int(self.seed)
        if seed > MAX_SEED:
            raise InputError(f"Seed must be between 0 and {MAX_SEED}, got {seed}.")
        return GenerateRequest(
            self.prompt.strip(), self.negative_prompt.strip(), seed, self.steps, self.guidance, width, height,
            self.n, self.sampler,
        )


@dataclass
class GeneratedImage:
    image: Image.Image
    seed: int
    metadata: dict[str, Any]
    # Face similarity to the likeness reference in [0, 1] when ranked (Stylize best-of), else None.
    score: float | None = None


@dataclass
class GenerateResult:
    images: list[GeneratedImage]
    random_weights: bool
    warnings: list[str] = field(default_factory=list)


RANDOM_WEIGHTS_WARNING = (
    "These images come from random-weight test models (tiny profile): they are noise, not results. "
    "Download the real weights and use the default profile for real portraits."
)


def step_callback(total_steps: int, progress: ProgressFn, cancel: CancelToken, label: str = "step"):
    """A diffusers ``callback_on_step_end`` that reports progress and stops within one step on cancel."""

    def on_step_end(pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
        progress((step + 1) / total_steps, f"{label} {step + 1}/{total_steps}")
        if cancel.cancelled:
            raise CancelledError()
        return callback_kwargs

    return on_step_end


def generate(
    manager: ModelManager,
    request: GenerateRequest,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
    role: str = "base",
) -> GenerateResult:
    """Text-to-image with the base model; one image per seed (seed, seed+1, ...)."""
    cancel = cancel or CancelToken()
    info = manager.sd_info(role)
    req = request.validate(info.default_size)
    cancel.raise_if_cancelled()
    progress(0.0, "loading model")
    images: list[GeneratedImage] = []
    with manager.sd_pipeline("txt2img", role, req.sampler) as pipe:
        for index in range(req.n):
            seed = (req.seed + index) % (MAX_SEED + 1)
            sub_progress = _slice(progress, index, req.n)
            result = pipe(
                prompt=req.prompt,
                negative_prompt=req.negative_prompt or None,
                num_inference_steps=req.steps,
                guidance_scale=req.guidance,
                width=req.width,
                height=req.height,
                generator=generator_for(manager.device, seed),
                callback_on_step_end=step_callback(req.steps, sub_progress, cancel, f"image {index + 1}/{req.n}, step"),
            )
            metadata = {
                **{k: v for k, v in asdict(req).items() if k not in ("seed", "n")},
                "seed": seed,
                "model": info.base_id,
                "random_weights": info.random_weights,
                "mode": "txt2img",
            }
            images.append(GeneratedImage(result.images[0], seed, metadata))
    progress(1.0, "done")
    warnings = [RANDOM_WEIGHTS_WARNING] if info.random_weights else []
    return GenerateResult(images, info.random_weights, warnings)


def _slice(progress: ProgressFn, index: int, count: int) -> ProgressFn:
    def report(fraction: float, message: str = "") -> None:
        progress((index + fraction) / count, message)

    return report
