"""Per-tab ZeroGPU durations: read a handler's own arguments, resolve its defaults, ask gpu_time.

Each function here takes the same arguments as the handler it prices (``spaces.GPU`` calls it that way)
and returns whole seconds; the arithmetic lives in :mod:`portrait_studio.gpu_time`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from portrait_studio import gpu_time
from portrait_studio.errors import PortraitStudioError
from portrait_studio.services import Services

FALLBACK_SIZE = 512  # SD1.5's native side, when the model's config cannot be read (the tab says why anyway)
AUDIO_PROBE_RATE = 8000  # enough to count seconds; cheaper than the 16 kHz the renderer decodes


def _default_size(services: Services) -> int:
    try:
        return services.manager.sd_info().default_size
    except PortraitStudioError:
        return FALLBACK_SIZE


def stylize(services: Services) -> Callable[..., int]:
    """Prices ``on_generate(slug, weight, preset, prompt, negative, count, seed, best_of, restore, template,
    template_name, denoise, control, loras, lora_weight, sampler, steps, guidance, width, height, ...)``."""
    from portrait_studio.stylize.presets import get_preset
    from portrait_studio.stylize.request import DEFAULT_STEPS

    def seconds(*args: Any, **_: Any) -> int:
        (_slug, _weight, preset_id, _p, _n, count, _seed, rank, restore, template_image, template_name, _denoise,
         control, _loras, _lw, _sampler, step_count, _cfg, width, height) = args[:20]
        default_size = _default_size(services)
        size, steps = (default_size, default_size), DEFAULT_STEPS
        if preset_id:
            preset = get_preset(services.settings, preset_id)
            size, steps = preset.size_for(default_size), preset.steps
        template = template_image is not None or bool(template_name)
        return gpu_time.stylize_request(
            int(count or 1), int(step_count or 0) or steps, int(width or 0) or size[0], int(height or 0) or size[1],
            template=template, control=template and control not in (None, "none"),
            restore=float(restore or 0) > 0, best_of=bool(rank),
        ).seconds

    return seconds


def animate(services: Services) -> Callable[..., int]:
    """Prices ``on_animate(slug, weight, preset, prompt, negative, start_image, move, motions, motion_weight,
    frames, fps, steps, guidance, seed, interpolate, fast, ...)``."""
    from portrait_studio.animate.models import LIGHTNING_STEPS

    def seconds(*args: Any, **_: Any) -> int:
        n_frames, _fps, step_count = args[9:12]
        fast = bool(args[15])
        side = _default_size(services)
        steps = LIGHTNING_STEPS if fast else int(step_count)
        return gpu_time.animate_request(int(n_frames), steps, side, side).seconds

    return seconds


def talk(services: Services) -> Callable[..., int]:
    """Prices ``on_talk(image, slug, speech, still, enhance, expression, pose_style, mode, size, engine, steps,
    reference_video, ...)`` from
    the speech's length (decoded here, before any GPU is asked for; a bad file is refused the same way)."""
    from portrait_studio.media.audio import decode_audio

    def seconds(*args: Any, **_: Any) -> int:
        speech, _still, enhance, _expr, _style, mode, renderer = args[2:9]
        engine, steps = (args[9], args[10]) if len(args) > 10 else ("sadtalker", 25)
        reference_video = len(args) > 11 and bool(args[11])
        if not speech:  # the handler refuses at once: ask for the least
            return gpu_time.FLOOR_SECONDS
        limit = services.settings.max_audio_seconds
        audio = decode_audio(Path(speech), limit, sample_rate=AUDIO_PROBE_RATE).duration
        return gpu_time.talk_request(audio, int(renderer), enhance=bool(enhance), full=mode == "full",
                                     engine=str(engine or "sadtalker"), steps=int(steps or 25),
                                     reference_video=reference_video).seconds

    return seconds


def check_photos(*args: Any, **_: Any) -> int:
    """Prices ``on_check(files, ...)``."""
    files = args[0] if args else None
    return gpu_time.photo_check_request(len(files or [])).seconds


def anime(*_: Any, **__: Any) -> int:
    return gpu_time.anime_request().seconds
