"""The Animate service: a prompt (and optionally a portrait) to an MP4, a GIF and a zip of frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from portrait_studio.animate import models
from portrait_studio.animate.frames import fit_portrait, interpolate, to_arrays, write_frames_zip
from portrait_studio.animate.loras import motion_lora_paths, motion_role
from portrait_studio.animate.request import AnimateRequest, AnimateResult
from portrait_studio.errors import InputError, MissingWeightsError
from portrait_studio.instant.use import face_adapter_for
from portrait_studio.media.outputs import AI_LABEL
from portrait_studio.models.locator import download_command, is_random_weights
from portrait_studio.models.manager import ModelManager, generator_for
from portrait_studio.progress import CancelToken, ProgressFn, no_progress, scaled
from portrait_studio.registry.apply import loras_applied
from portrait_studio.stylize.generate import step_callback
from portrait_studio.stylize.service import should_fuse

RANDOM_WEIGHTS_WARNING = (
    "This animation comes from random-weight test models (tiny profile): it is noise, not a result. "
    "Download the real weights and use the default profile for real animations."
)
# Progress budget: loading, denoising, decoding + writing.
_LOAD_END, _DENOISE_END = 0.1, 0.85
_DECODE_CHUNK = 4  # frames per VAE decode call: bounds peak memory on long clips


def animate(
    manager: ModelManager,
    request: AnimateRequest,
    out_dir: Path,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
    *,
    base_role: str = "base",
    name: str | None = None,
) -> AnimateResult:
    """Render ``request`` into ``out_dir`` as ``<name>.mp4``, ``<name>.gif`` and ``<name>-frames.zip``.

    ``name`` (a plain file stem) defaults to ``animate-<seed>``. Nothing is written before the render
    succeeded, and each file appears whole or not at all.
    """
    cancel = cancel or CancelToken()
    if name is not None and (not name or Path(name).name != name or name.startswith(".")):
        raise InputError(f"Output name {name!r} must be a plain file name without folders.")
    info = manager.sd_info(base_role)
    req = request.validate(info.default_size)
    if req.fast and not models.fast_available(manager):
        raise MissingWeightsError(
            models.LIGHTNING_ROLE, manager.locator.source_description(models.LIGHTNING_ROLE),
            download_command(models.LIGHTNING_ROLE), "Fast mode needs the AnimateDiff-Lightning weights",
        )
    cancel.raise_if_cancelled()
    progress(0.0, "loading motion model")
    face, face_random = _face(manager, req)
    warnings: list[str] = []
    adapter_role = models.adapter_role_for(_pipeline_kind(req), bool(req.motions), req.fast)
    if adapter_role == models.V3_ROLE and req.mode != "sparsectrl" and not models.v3_available(manager):
        # Text and video2video run on v1.5.2 too; only SparseCtrl keyframes need v3 (and then it is an error).
        adapter_role = models.MOTION_ADAPTER_ROLE
        warnings.append(
            "AnimateDiff v3 weights are not downloaded, so v1.5.2 animated this; for v3 run: "
            f"{download_command(models.V3_ROLE)},{models.DOMAIN_ADAPTER_ROLE}"
        )
    motion = models.motion_info(manager, base_role, adapter_role)
    motion_loras = motion_lora_paths(manager, req.motions)
    domain_adapter = _domain_adapter(manager, adapter_role)
    likeness_lora = req.likeness.path if req.likeness and not req.likeness.is_instant else None
    loras = ([(Path(likeness_lora), req.likeness.weight)] if likeness_lora else []) + motion_loras + domain_adapter
    steps, guidance = (models.LIGHTNING_STEPS, 1.0) if req.fast else (req.steps, req.guidance)
    if req.fast and (req.steps != steps or req.guidance != guidance):
        warnings.append(f"Fast mode always runs {steps} steps without guidance; steps and guidance were ignored.")

    frames = _render(manager, req, base_role, adapter_role, loras, steps, guidance, progress, cancel, face)
    cancel.raise_if_cancelled()

    progress(_DENOISE_END, "writing video")
    arrays = interpolate(to_arrays(frames), req.interpolate)
    fps = req.fps * 2 if req.interpolate != "none" else req.fps
    random_weights = (
        info.random_weights
        or motion.random_weights
        or any(is_random_weights(path) for path, _ in motion_loras + domain_adapter)
        or bool(req.likeness and req.likeness.random_weights)
        or (req.mode == "sparsectrl" and is_random_weights(manager.locator.path(models.SPARSECTRL_ROLES["rgb"])))
        or face_random
    )
    if random_weights:
        warnings.insert(0, RANDOM_WEIGHTS_WARNING)
    metadata: dict[str, Any] = {
        **req.describe(),
        "steps": steps,
        "guidance": guidance,
        "output_frames": len(arrays),
        "output_fps": fps,
        "model": info.base_id,
        "motion_model": motion.adapter_id,
        "domain_adapter": manager.locator.source_description(models.DOMAIN_ADAPTER_ROLE) if domain_adapter else None,
        "keyframe_encoder": (
            manager.locator.source_description(models.SPARSECTRL_ROLES["rgb"]) if req.mode == "sparsectrl" else None
        ),
        "motion_loras": {m: manager.locator.source_description(motion_role(m)) for m, _ in req.motions},
        "free_noise": _free_noise_frames(req) > models.CONTEXT_FRAMES,
        "face_strength": face.strength if face is not None else None,
        "split_inference": _free_noise_frames(req) > models.CONTEXT_FRAMES,
        "random_weights": random_weights,
        "label": AI_LABEL,
    }
    stem = name or f"animate-{req.seed}"
    mp4_path, gif_path, zip_path = _write_outputs(arrays, fps, Path(out_dir), stem, metadata, progress)
    progress(1.0, "done")
    return AnimateResult(mp4_path, gif_path, zip_path, len(arrays), fps, req.seed, random_weights, warnings, metadata)


def _pipeline_kind(req: AnimateRequest) -> str:
    return {"txt2vid": "txt2vid", "sparsectrl": "sparsectrl", "video2video": "vid2vid"}[req.mode]


def _free_noise_frames(req: AnimateRequest) -> int:
    """Frames FreeNoise windows are sized for; SparseCtrl renders its (at most 32) frames in one window."""
    return 0 if req.mode == "sparsectrl" else req.frames


def _domain_adapter(manager: ModelManager, adapter_role: str) -> list[tuple[Path, float]]:
    """The v3 domain adapter LoRA when the v3 motion module runs (it was trained together with it)."""
    if not models.uses_domain_adapter(adapter_role):
        return []
    path = manager.locator.path(models.DOMAIN_ADAPTER_ROLE)
    if not path.is_file():
        role = models.DOMAIN_ADAPTER_ROLE
        raise MissingWeightsError(role, str(path), download_command(role), "file missing")
    return [(path, models.DOMAIN_ADAPTER_WEIGHT)]


def _render(
    manager: ModelManager,
    req: AnimateRequest,
    base_role: str,
    adapter_role: str,
    loras: list[tuple[Path, float]],
    steps: int,
    guidance: float,
    progress: ProgressFn,
    cancel: CancelToken,
    face: Any = None,
) -> list[Any]:
    """Denoise and decode; every change to shared modules is undone before this returns or raises."""
    kind = _pipeline_kind(req)
    denoise_steps = min(int(steps * req.strength), steps) if kind == "vid2vid" else steps
    callback = step_callback(denoise_steps, _denoise_phases(progress), cancel, "animating, step")
    call: dict[str, Any] = dict(
        prompt=req.prompt,
        negative_prompt=req.negative_prompt or None,
        num_inference_steps=steps,
        guidance_scale=guidance,
        width=req.width,
        height=req.height,
        generator=generator_for(manager.device, req.seed),
        callback_on_step_end=callback,
        output_type="pil",
    )
    if kind == "vid2vid":
        # The portrait repeated as a still "video", partly re-noised, so the motion module adds movement.
        portrait = fit_portrait(req.init_image, req.width, req.height)
        call.update(video=[portrait] * req.frames, strength=req.strength, decode_chunk_size=_DECODE_CHUNK)
    elif kind == "sparsectrl":
        # The portrait (and the end image) as SparseCtrl RGB keyframes; the motion module fills the frames between.
        keyframes = [fit_portrait(req.init_image, req.width, req.height)]
        if req.end_image is not None:
            keyframes.append(fit_portrait(req.end_image, req.width, req.height))
        call.update(
            num_frames=req.frames, conditioning_frames=keyframes, controlnet_frame_indices=list(req.keyframe_indices()),
            controlnet_conditioning_scale=req.keyframe_strength,  # it decodes all frames at once (VAE slicing on)
        )
    else:
        call.update(num_frames=req.frames, decode_chunk_size=_DECODE_CHUNK)

    dirty = False
    with models.motion_pipeline(manager, kind, base_role, req.fast, adapter_role=adapter_role) as pipe:
        progress(_LOAD_END, "encoding the prompt, preparing the first step")
        try:
            with models.vae_memory_savers(pipe.vae, req.low_memory), models.free_noise(pipe, _free_noise_frames(req)):
                with loras_applied(pipe, loras, fuse=should_fuse(manager)), face_adapter_for(
                    manager, pipe, face, guidance
                ) as face_kwargs, models.split_inference(pipe, _free_noise_frames(req)):
                    output = pipe(**call, **face_kwargs)
        finally:
            dirty = not (models.module_is_clean(pipe.unet) and models.module_is_clean(pipe.text_encoder))
    if dirty:  # never hand a LoRA-carrying module to the next request
        models.drop_motion_unet(manager, base_role, adapter_role)
        manager.cache.remove(f"{base_role}:text_encoder")
    return list(output.frames[0])


def _denoise_phases(progress: ProgressFn) -> ProgressFn:
    """Denoising steps fill their slice of the bar; after the last one the pipeline still decodes every frame
    (the longest quiet stretch on a CPU), and the message says so instead of sitting on the last step."""
    denoise = scaled(progress, _LOAD_END, _DENOISE_END)

    def report(fraction: float, message: str = "") -> None:
        denoise(fraction, message)
        if fraction >= 1.0:
            denoise(1.0, "decoding the frames")

    return report


def _face(manager: ModelManager, req: AnimateRequest) -> tuple[Any, bool]:
    """The face-adapter condition (instant likeness, or a trained one with a face strength) and whether
    the adapter's models are random."""
    if req.likeness is None:
        return None, False
    from portrait_studio.instant.adapter import adapter_random_weights
    from portrait_studio.instant.use import face_condition, resolve_strength

    strength = resolve_strength(req.likeness.face_strength, req.likeness.is_instant)
    condition = face_condition(manager, req.likeness.label, strength, instant_path=req.likeness.instant_path,
                               reference_path=req.likeness.reference_path)
    return condition, bool(condition is not None and adapter_random_weights(manager))


def _write_outputs(
    arrays: list[np.ndarray], fps: int, out_dir: Path, stem: str, metadata: dict[str, Any], progress: ProgressFn
) -> tuple[Path, Path, Path]:
    from portrait_studio.media.video import write_gif, write_mp4

    out_dir.mkdir(parents=True, exist_ok=True)
    mp4_path = write_mp4(arrays, out_dir / f"{stem}.mp4", fps)
    progress(0.92, "writing GIF")
    gif_path = write_gif(arrays, out_dir / f"{stem}.gif", fps)
    progress(0.97, "writing frames")
    zip_path = write_frames_zip(arrays, out_dir / f"{stem}-frames.zip", metadata)
    return mp4_path, gif_path, zip_path
