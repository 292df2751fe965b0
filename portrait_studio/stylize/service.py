"""The Stylize service: presets or prompts, with a likeness and style LoRAs, free or on a template photo.

One call does the whole job: resolve the preset and LoRAs (refusing a likeness from another base model),
generate ``n`` images (txt2img, or template inpainting), optionally restore faces, optionally rank by
likeness. LoRAs are applied to the pipeline only for this call and always removed (ARCHITECTURE.md §2);
on a GPU they are fused for speed and the exact base weights are restored afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from portrait_studio.config import Settings
from portrait_studio.errors import CancelledError
from portrait_studio.models.manager import ModelInfo, ModelManager, generator_for
from portrait_studio.progress import CancelToken, ProgressFn, no_progress, scaled
from portrait_studio.stylize.generate import (
    MAX_SEED,
    RANDOM_WEIGHTS_WARNING,
    GeneratedImage,
    GenerateRequest,
    step_callback,
)
from portrait_studio.stylize.likeness import Likeness, LoraUse, resolve_likeness, resolve_style_loras
from portrait_studio.stylize.presets import StylePreset, get_preset, list_presets
from portrait_studio.stylize.request import StylizeRequest, StylizeResult, build_generation

__all__ = ["StylizeRequest", "StylizeResult", "list_presets", "stylize", "should_fuse"]

BASE_ROLE = "base"
# Progress budget: preparing, generating, then restoring/ranking.
_GEN_START, _GEN_END = 0.05, 0.9


def should_fuse(manager: ModelManager) -> bool:
    """Fuse LoRAs into the weights for the request where that is faster (a GPU); unfused on the CPU."""
    return manager.device.type == "cuda"


def stylize(
    manager: ModelManager,
    request: StylizeRequest,
    settings: Settings,
    registry: Any = None,
    owner: str = "local",
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
) -> StylizeResult:
    """Generate ``request.n`` portraits; see :class:`StylizeRequest` for the options."""
    cancel = cancel or CancelToken()
    request.check()
    info = manager.sd_info(BASE_ROLE)
    preset = get_preset(settings, request.preset) if request.preset else None
    likeness = (
        resolve_likeness(settings, registry, owner, request.likeness, info) if request.likeness else None
    )
    styles = resolve_style_loras(settings, registry, owner, manager, info, request.style_loras, preset)
    gen = build_generation(request, preset, likeness.subject if likeness else None, info.default_size)
    scorer = _scorer(settings, request, likeness)
    random_restorer = _preflight_restore(settings) if request.restore > 0 else False
    prepared = _prepare_template(settings, request, info)
    loras = ([LoraUse(likeness.lora_path, request.likeness_weight, likeness.name, likeness.random_weights)]
             if likeness and likeness.lora_path else []) + styles
    face, face_random = _face(manager, request, likeness)
    cancel.raise_if_cancelled()
    progress(0.0, "loading models")

    warnings: list[str] = []
    gen_progress = scaled(progress, _GEN_START, _GEN_END)
    finished: list[GeneratedImage] = []  # filled as each image is done: a cancel keeps these
    cancelled = False
    try:
        if prepared is not None:
            images, extra_random = _run_template(manager, request, prepared, gen, loras, face, gen_progress, cancel,
                                                 finished)
            if prepared.faces_found > 1:
                warnings.append(
                    f"The template shows {prepared.faces_found} faces; only the largest one was repainted.")
        else:
            images, extra_random = _run_txt2img(manager, gen, loras, face, gen_progress, cancel, finished), False
    except CancelledError:
        if not finished:
            raise
        # Mode-specific random parts (a template's ControlNet) are unknown here: mark it as the base model is.
        images, extra_random, cancelled = list(finished), prepared is not None and info.random_weights, True
        warnings.append(f"Cancelled after {len(images)} of {gen.n} images: the finished ones are kept; "
                        "face restoration and ranking were skipped.")
    random_weights = (
        info.random_weights or extra_random or random_restorer or face_random
        or any(use.random_weights for use in loras) or bool(likeness and likeness.random_weights)
    )

    for index, item in enumerate(images):
        item.metadata = {
            **_describe(request, gen, info, preset, likeness, loras, item.seed, random_weights, face),
            **item.metadata,
        }
        if request.restore > 0 and not cancelled:
            cancel.raise_if_cancelled()
            progress(_GEN_END + 0.05 * index / len(images), f"restoring faces {index + 1}/{len(images)}")
            item.image = _restore(item.image, settings, request.restore)
    if scorer is not None and not cancelled:
        progress(0.95, "ranking by likeness")
        from portrait_studio.stylize.best_of import rank

        images = rank(images, scorer)
    progress(1.0, "cancelled" if cancelled else "done")
    if random_weights:
        warnings.insert(0, RANDOM_WEIGHTS_WARNING)
    return StylizeResult(images, random_weights, warnings, cancelled=cancelled)


# ---- the two modes ------------------------------------------------------------------------------------
def _face(manager: ModelManager, request: StylizeRequest, likeness: Likeness | None) -> tuple[Any, bool]:
    """The face-adapter condition of this request (None when off) and whether its models are random."""
    if likeness is None:
        return None, False
    from portrait_studio.instant.adapter import adapter_random_weights
    from portrait_studio.instant.use import face_condition, resolve_strength

    strength = resolve_strength(request.face_strength, likeness.is_instant)
    condition = face_condition(manager, likeness.name, strength, instant_path=likeness.instant_path,
                               reference_path=likeness.reference_path)
    return condition, bool(condition is not None and adapter_random_weights(manager))


@contextlib.contextmanager
def _with_loras(
    manager: ModelManager, pipe: Any, loras: list[LoraUse], face: Any = None, guidance: float = 0.0
) -> Iterator[dict[str, Any]]:
    """LoRAs, then the face adapter (undone in the reverse order); yields the adapter's call arguments."""
    from portrait_studio.instant.use import face_adapter_for
    from portrait_studio.registry.apply import loras_applied

    with loras_applied(pipe, [(use.path, use.weight) for use in loras], fuse=should_fuse(manager)):
        with face_adapter_for(manager, pipe, face, guidance) as face_kwargs:
            yield face_kwargs


def _common_call(gen: GenerateRequest, manager: ModelManager, seed: int) -> dict[str, Any]:
    return dict(
        prompt=gen.prompt,
        negative_prompt=gen.negative_prompt or None,
        num_inference_steps=gen.steps,
        guidance_scale=gen.guidance,
        generator=generator_for(manager.device, seed),
    )


def _seeds(gen: GenerateRequest) -> list[int]:
    return [(gen.seed + index) % (MAX_SEED + 1) for index in range(gen.n)]


def _run_txt2img(
    manager: ModelManager, gen: GenerateRequest, loras: list[LoraUse], face: Any, progress: ProgressFn,
    cancel: CancelToken, images: list[GeneratedImage] | None = None,
) -> list[GeneratedImage]:
    images = [] if images is None else images
    with manager.sd_pipeline("txt2img", BASE_ROLE, gen.sampler) as pipe, \
            _with_loras(manager, pipe, loras, face, gen.guidance) as face_kwargs:
        for index, seed in enumerate(_seeds(gen)):
            label = f"image {index + 1}/{gen.n}, step"
            callback = step_callback(gen.steps, scaled(progress, index / gen.n, (index + 1) / gen.n), cancel, label)
            output = pipe(
                **_common_call(gen, manager, seed), **face_kwargs, width=gen.width, height=gen.height,
                callback_on_step_end=callback,
            )
            images.append(GeneratedImage(output.images[0], seed, {"mode": "txt2img"}))
    return images


def _prepare_template(settings: Settings, request: StylizeRequest, info: ModelInfo) -> Any:
    """Find the template's face before any model loads (no face: InputError at once)."""
    if request.template is None:
        return None
    from portrait_studio.stylize.template import prepare_template

    return prepare_template(settings, request.template, info.default_size)


def _run_template(
    manager: ModelManager,
    request: StylizeRequest,
    prepared: Any,
    gen: GenerateRequest,
    loras: list[LoraUse],
    face: Any,
    progress: ProgressFn,
    cancel: CancelToken,
    images: list[GeneratedImage] | None = None,
) -> tuple[list[GeneratedImage], bool]:
    from portrait_studio.stylize import template as tpl

    loaders, random_controlnet = tpl.load_controlnets(manager, request.control)
    keys = list(loaders)
    images = [] if images is None else images
    with manager.cache.use(*keys, loaders=loaders) as parts:
        models = [parts[key] for key in keys]
        kind = "controlnet_inpaint" if models else "inpaint"
        extra = {"controlnet": models[0] if len(models) == 1 else models} if models else {}
        with manager.sd_pipeline(kind, BASE_ROLE, gen.sampler, **extra) as pipe, \
                _with_loras(manager, pipe, loras, face, gen.guidance) as face_kwargs:
            for index, seed in enumerate(_seeds(gen)):

                def make_callback(total: int, label: str, index: int = index) -> Any:
                    # Two passes per image: the face gets 80% of its slice, the edge blend 20%.
                    start, end = (0.0, 0.8) if label == "face" else (0.8, 1.0)
                    part = scaled(progress, (index + start) / gen.n, (index + end) / gen.n)
                    return step_callback(total, part, cancel, f"image {index + 1}/{gen.n}, {label} step")

                final, _ = tpl.repaint(
                    pipe, prepared, {**_common_call(gen, manager, seed), **face_kwargs}, request.denoise,
                    request.control, make_callback,
                )
                left, top, side = prepared.box
                meta = {"mode": "template", "denoise": request.denoise, "control": request.control,
                        "face_region": [left, top, side, side], "width": final.width, "height": final.height}
                images.append(GeneratedImage(final, seed, meta))
    return images, random_controlnet


# ---- helpers ------------------------------------------------------------------------------------------
def _scorer(settings: Settings, request: StylizeRequest, likeness: Likeness | None) -> Any:
    if not request.best_of or likeness is None:
        return None
    from portrait_studio.stylize.best_of import likeness_scorer

    return likeness_scorer(settings, likeness)


def _preflight_restore(settings: Settings) -> bool:
    """Fail before generating when GFPGAN or its face helpers are missing (MissingWeightsError);
    return whether the restorer's weights are random (tiny profile)."""
    from portrait_studio.faces.facexlib_models import facexlib_weights_dir
    from portrait_studio.faces.restore import get_restorer

    restorer = get_restorer(settings)
    facexlib_weights_dir(settings)
    return bool(restorer.random_weights)


def _restore(image: Any, settings: Settings, strength: float) -> Any:
    from portrait_studio.faces.restore import restore_faces

    return restore_faces(image, settings, strength)


def _describe(
    request: StylizeRequest,
    gen: GenerateRequest,
    info: ModelInfo,
    preset: StylePreset | None,
    likeness: Likeness | None,
    loras: list[LoraUse],
    seed: int,
    random_weights: bool,
    face: Any = None,
) -> dict[str, Any]:
    """The settings that reproduce an image (they go into the PNG's text chunk)."""
    settings = {k: v for k, v in asdict(gen).items() if k not in ("seed", "n")}
    styles = [(use.label, use.weight) for use in loras if likeness is None or use.path != likeness.lora_path]
    kind = None if likeness is None else ("instant" if likeness.is_instant else "lora")
    return {
        **settings,
        "seed": seed,
        "model": info.base_id,
        "preset": preset.id if preset else None,
        "likeness": likeness.name if likeness else None,
        "likeness_kind": kind,
        "likeness_weight": request.likeness_weight if likeness and not likeness.is_instant else None,
        "face_strength": face.strength if face is not None else None,
        "style_loras": styles,
        "restore": request.restore,
        "random_weights": random_weights,
        # What the user typed and picked, so "Reuse settings" can fill the form again (stylize/reuse.py).
        "request": {"prompt": request.prompt, "negative_prompt": request.negative_prompt,
                    "likeness": request.likeness, "template": request.template is not None},
    }

