"""What one job may ask for: size maxima, text lengths, disk per visitor and a time budget per job.

Locally the maxima are the sliders' own; in public mode (``Settings.public``) they are the lower
``public_max_*`` settings, prompts are capped at ``max_prompt_chars``, a visitor's disk use at
``max_disk_mb_per_visitor``, and every model job gets a time budget (``job_budget_seconds``):

- **Up front**, :func:`estimate_seconds` turns the job's figures (steps, images, pixels, frames) and the
  device into seconds; a job whose estimate exceeds the budget is refused before it takes the GPU slot. The
  same job passes on a GPU and is refused on a CPU.
- **While it runs**, :func:`time_budget` arms a timer that trips the job's cancel token at the budget: the same
  ``CancelTokens.cancel`` the Cancel button calls, so the job stops within one step, even when its client left.

Every refusal names the limit, its value and the setting (``PORTRAIT_STUDIO_*``) that changes it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from portrait_studio.config import ENV_PREFIX, Settings

# Seconds per denoising step of one 512x512 SD1.5 image with classifier-free guidance (a batch of two).
# CPU: 7.3 s per unguided step measured on these machines (ARCHITECTURE.md), doubled for guidance.
# CUDA and MPS: typical published figures for SD1.5 fp16 (about 20 and 2 steps per second). Estimates are for
# the real models; the tiny test models run far below them.
SECONDS_PER_STEP_512 = {"cpu": 14.6, "mps": 0.7, "cuda": 0.06}
# AnimateDiff: every frame is a UNet pass, plus the motion modules (about a third more).
MOTION_OVERHEAD = 1.3


@dataclass(frozen=True)
class Maxima:
    steps: int
    size: int
    images: int
    frames: int
    audio_seconds: float


# The UI's own slider ranges: what a local user may run on their own machine.
LOCAL_MAXIMA = Maxima(steps=100, size=1024, images=8, frames=64, audio_seconds=60.0)


def maxima(settings: Settings) -> Maxima:
    if not settings.public:
        return Maxima(LOCAL_MAXIMA.steps, LOCAL_MAXIMA.size, LOCAL_MAXIMA.images, LOCAL_MAXIMA.frames,
                      settings.max_audio_seconds)
    return Maxima(
        steps=min(settings.public_max_steps, LOCAL_MAXIMA.steps),
        size=min(settings.public_max_size, LOCAL_MAXIMA.size),
        images=min(settings.public_max_images, LOCAL_MAXIMA.images),
        frames=min(settings.public_max_frames, LOCAL_MAXIMA.frames),
        audio_seconds=min(settings.public_max_audio_seconds, settings.max_audio_seconds),
    )


def effective_settings(settings: Settings) -> Settings:
    """The settings the services see: in public mode the audio cap is the public one."""
    if not settings.public:
        return settings
    return settings.replace(max_audio_seconds=maxima(settings).audio_seconds)


def refuse(message: str) -> gr.Error:
    return gr.Error(message, print_exception=False)


def _setting(name: str) -> str:
    return f"{ENV_PREFIX}{name.upper()}"


def check_figures(settings: Settings, *, steps: int = 0, size: int = 0, images: int = 0, frames: int = 0) -> None:
    """Refuse figures over this deployment's maxima (0 means "the default", always within them)."""
    top = maxima(settings)
    mode = "on this public app" if settings.public else "here"
    for label, value, limit, name in (("Steps", steps, top.steps, "public_max_steps"),
                                      ("Width/height", size, top.size, "public_max_size"),
                                      ("Images", images, top.images, "public_max_images"),
                                      ("Frames", frames, top.frames, "public_max_frames")):
        if value > limit:
            where = f" ({_setting(name)})" if settings.public else ""
            raise refuse(f"{label} is {value}; the most {mode} is {limit}{where}.")


def check_text(settings: Settings, label: str, text: str | None) -> None:
    """Prompts are capped in public mode: they are encoded, held by the job and written into PNG metadata."""
    if not settings.public or not text:
        return
    if len(text) > settings.max_prompt_chars:
        raise refuse(f"{label} is {len(text)} characters; the limit is {settings.max_prompt_chars} "
                     f"({_setting('max_prompt_chars')}). Shorten it.")


def folder_bytes(folder: Path) -> int:
    total = 0
    if not folder.is_dir():
        return 0
    for path in folder.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:  # deleted meanwhile (the janitor)
            continue
    return total


def check_disk(settings: Settings, outputs_of_owner: Path, uploaded_bytes: int = 0) -> None:
    """Refuse a new job when the visitor's outputs plus uploads already fill their share of the disk."""
    if not settings.public:
        return
    used = folder_bytes(outputs_of_owner) + uploaded_bytes
    limit = settings.max_disk_mb_per_visitor * 1024 * 1024
    if used >= limit:
        raise refuse(f"Your files use {used / 2**20:.0f} MB; the limit per visitor is "
                     f"{settings.max_disk_mb_per_visitor} MB ({_setting('max_disk_mb_per_visitor')}). "
                     f"They are deleted after {settings.cleanup_after_hours:g} hours.")


def device_kind(device: object) -> str:
    kind = str(getattr(device, "type", device)).split(":")[0]
    return kind if kind in SECONDS_PER_STEP_512 else "cpu"


def estimate_seconds(device: str, *, steps: int, width: int, height: int, images: int = 1, frames: int = 0) -> float:
    """Expected run time of a diffusion job: steps x images (or frames) x pixels, at the device's speed."""
    per_step = SECONDS_PER_STEP_512[device_kind(device)] * (width * height) / (512 * 512)
    passes = frames * MOTION_OVERHEAD if frames else images
    return steps * passes * per_step


def check_budget(settings: Settings, task: str, seconds: float, device: str) -> None:
    """Refuse up front a job whose estimate is over the per-job budget (public mode)."""
    if not settings.public or seconds <= settings.job_budget_seconds:
        return
    raise refuse(f"This {task} job needs about {seconds / 60:.0f} min on this machine's {device_kind(device)}; "
                 f"the limit per job is {settings.job_budget_seconds / 60:g} min "
                 f"({_setting('job_budget_seconds')}). Use fewer steps, images or frames, or a smaller size.")


@contextmanager
def time_budget(settings: Settings, tokens: object, session: str, task: str) -> Iterator[None]:
    """Trip the job's cancel token (as the Cancel button does) when it runs past the budget (public mode)."""
    if not settings.public:
        yield
        return
    expired = threading.Event()

    def stop() -> None:
        expired.set()
        tokens.cancel(session, task)  # type: ignore[attr-defined]

    timer = threading.Timer(settings.job_budget_seconds, stop)
    timer.daemon = True
    timer.start()
    try:
        yield
    except gr.Error as exc:
        if expired.is_set():
            raise refuse(f"Stopped at the time limit of {settings.job_budget_seconds:g} s per job "
                         f"({_setting('job_budget_seconds')}). Use fewer steps or a smaller size.") from exc
        raise
    finally:
        timer.cancel()


# What a job of unspecified steps/size runs with (SD1.5's native size, the stylize default steps).
DEFAULT_STEPS, DEFAULT_SIZE = 25, 512


def admit(services: object, owner: str, task: str, *, steps: int = 0, width: int = 0, height: int = 0,
          images: int = 1, frames: int = 0) -> None:
    """All up-front checks of one model job: maxima, the visitor's disk, the time budget on this device."""
    from portrait_studio.services import owner_id

    settings: Settings = services.settings  # type: ignore[attr-defined]
    check_figures(settings, steps=steps, size=max(width, height), images=images, frames=frames)
    check_disk(settings, settings.outputs_dir / owner_id(owner))
    device = str(getattr(services.manager, "device", "cpu"))  # type: ignore[attr-defined]
    seconds = estimate_seconds(device, steps=steps or DEFAULT_STEPS, width=width or DEFAULT_SIZE,
                               height=height or DEFAULT_SIZE, images=max(images, 1), frames=frames)
    check_budget(settings, task, seconds, device)
