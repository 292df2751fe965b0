"""Animate end to end on the tiny models: files, frame counts, LoRAs on and off, cancel, Fast mode."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from portrait_studio.animate import models
from portrait_studio.animate.request import AnimateRequest, Likeness
from portrait_studio.animate.service import RANDOM_WEIGHTS_WARNING, animate
from portrait_studio.config import settings_from_env
from portrait_studio.errors import CancelledError, InputError, MissingWeightsError
from portrait_studio.media.video import probe_video
from portrait_studio.models.manager import ModelManager
from portrait_studio.progress import CancelToken
from tests.animate.conftest import SMALL, read_zip_frames, same_state, state_snapshot


def _portrait(name: str = "astronaut") -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def test_text_to_animation_writes_playable_mp4_gif_and_frames(tiny_manager, tmp_path: Path) -> None:
    messages: list[tuple[float, str]] = []
    result = animate(
        tiny_manager, AnimateRequest("a portrait, smiling", **SMALL), tmp_path,
        progress=lambda fraction, message="": messages.append((fraction, message)),
    )
    info = probe_video(result.mp4_path)
    assert (info.frames, info.fps, info.codec, info.pix_fmt) == (4, 8.0, "h264", "yuv420p")
    assert (info.width, info.height) == (32, 32)
    with Image.open(result.gif_path) as gif:
        assert gif.n_frames == 4 and gif.info["loop"] == 0 and gif.info["duration"] == 120
    frames = read_zip_frames(result.frames_zip)
    assert len(frames) == 4 and frames[0].shape == (32, 32, 3)
    with zipfile.ZipFile(result.frames_zip) as archive:
        metadata = json.loads(archive.read("metadata.json"))
    assert metadata["seed"] == 7 and metadata["mode"] == "txt2vid" and metadata["random_weights"] is True
    assert (result.frames, result.fps, result.seed) == (4, 8, 7)
    assert result.random_weights and result.warnings[0] == RANDOM_WEIGHTS_WARNING
    phases = [m for _, m in messages]
    assert [m for m in phases if "step " in m] == ["animating, step 1/2", "animating, step 2/2"]
    assert phases.index("decoding the frames") == phases.index("animating, step 2/2") + 1  # a message per phase
    fractions = [f for f, _ in messages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp files left behind"


def test_same_seed_same_frames_and_motion_lora_changes_them(tiny_manager, tmp_path: Path) -> None:
    def render(name: str, motions: list[tuple[str, float]]) -> np.ndarray:
        result = animate(tiny_manager, AnimateRequest("a portrait", motions=motions, **SMALL), tmp_path, name=name)
        return np.stack(read_zip_frames(result.frames_zip)).astype(int)

    plain = render("plain", [])
    zoom, pan = render("zoom", [("zoom-in", 1.0)]), render("pan", [("pan-left", 1.0)])
    assert np.abs(zoom - plain).mean() > 1.0
    assert np.abs(pan - zoom).mean() > 1.0
    # Weight 0 means off (the LoRA is not even loaded), and one seed renders the same frames twice.
    assert np.array_equal(render("zero", [("zoom-in", 0.0)]), plain)


def test_request_leaves_shared_models_untouched(tiny_manager, tmp_path: Path, likeness_lora: Path) -> None:
    stylize_parts = tiny_manager.sd_components("base")  # Stylize warm: base:unet in the same cache
    unet_motion = models.motion_unet(tiny_manager)
    before = {
        "base unet": state_snapshot(stylize_parts["unet"]),
        "text encoder": state_snapshot(stylize_parts["text_encoder"]),
        "vae": state_snapshot(stylize_parts["vae"]),
        "motion unet": state_snapshot(unet_motion),
    }
    request = AnimateRequest("a portrait", likeness=Likeness(likeness_lora, 0.9, "Anna", "annaperson"),
                             motions=[("zoom-in", 0.8), ("tilt-up", 0.5)], **SMALL)
    result = animate(tiny_manager, request, tmp_path)
    assert result.metadata["prompt"].startswith("annaperson, ")
    assert result.metadata["likeness"] == "Anna"
    modules = {"base unet": stylize_parts["unet"], "text encoder": stylize_parts["text_encoder"],
               "vae": stylize_parts["vae"], "motion unet": models.motion_unet(tiny_manager)}
    for label, module in modules.items():
        assert same_state(module, before[label]), f"{label} changed"
        assert models.module_is_clean(module), f"{label} still carries LoRA layers"
    assert models.motion_unet(tiny_manager) is unet_motion, "motion UNet was rebuilt instead of reused"
    assert not stylize_parts["vae"].use_slicing and not stylize_parts["vae"].use_tiling


def test_likeness_lora_changes_the_animation(tiny_manager, tmp_path: Path, likeness_lora: Path) -> None:
    plain = animate(tiny_manager, AnimateRequest("a portrait", **SMALL), tmp_path, name="plain")
    liked = animate(tiny_manager, AnimateRequest("a portrait", likeness=Likeness(likeness_lora, 1.0), **SMALL),
                    tmp_path, name="liked")
    difference = np.abs(np.stack(read_zip_frames(plain.frames_zip)).astype(int)
                        - np.stack(read_zip_frames(liked.frames_zip)).astype(int))
    assert difference.mean() > 1.0


def test_pipeline_shares_vae_text_encoder_and_tokenizer_with_stylize(tiny_manager) -> None:
    stylize_parts = tiny_manager.sd_components("base")
    with models.motion_pipeline(tiny_manager, "txt2vid") as pipe:
        assert pipe.vae is stylize_parts["vae"]
        assert pipe.text_encoder is stylize_parts["text_encoder"]
        assert pipe.tokenizer is stylize_parts["tokenizer"]
        assert pipe.unet is tiny_manager.cache.get(models.motion_unet_key(), lambda: None)
        assert pipe.unet is not stylize_parts["unet"]
        assert tiny_manager.cache.is_locked(models.motion_unet_key())
    assert not tiny_manager.cache.is_locked(models.motion_unet_key())


def test_video_to_video_portrait_mode_follows_the_portrait(tiny_manager, tmp_path: Path) -> None:
    def render(image: Image.Image, strength: float, name: str) -> np.ndarray:
        request = AnimateRequest("a portrait", init_image=image, strength=strength, portrait_mode="video2video",
                                 **{**SMALL, "steps": 4})
        result = animate(tiny_manager, request, tmp_path, name=name)
        assert result.metadata["mode"] == "video2video" and probe_video(result.mp4_path).frames == 4
        return np.stack(read_zip_frames(result.frames_zip)).astype(float)

    astronaut, coffee = _portrait("astronaut"), _portrait("coffee")
    near = render(astronaut, 0.25, "near")
    assert np.abs(near - render(coffee, 0.25, "coffee")).mean() > 1.0
    # Lower strength stays closer to the portrait: compare with what the VAE makes of the portrait itself.
    with models.motion_pipeline(tiny_manager, "vid2vid") as pipe:
        from portrait_studio.animate.frames import fit_portrait

        pixels = pipe.video_processor.preprocess(fit_portrait(astronaut, 32, 32), 32, 32)
        decoded = pipe.vae.decode(pipe.vae.encode(pixels).latent_dist.mode()).sample
        reference = pipe.video_processor.postprocess(decoded, output_type="np")[0] * 255
    assert np.abs(near - reference).mean() < np.abs(render(astronaut, 1.0, "far") - reference).mean()


def test_long_clip_uses_free_noise_and_restores_the_motion_unet(tiny_manager, tmp_path: Path) -> None:
    unet_motion = models.motion_unet(tiny_manager)
    before = state_snapshot(unet_motion)
    request = AnimateRequest("a portrait", motions=[("zoom-out", 1.0)], **{**SMALL, "frames": 18})
    result = animate(tiny_manager, request, tmp_path, name="long")
    assert result.metadata["free_noise"] is True
    assert probe_video(result.mp4_path).frames == 18
    assert same_state(unet_motion, before)
    block_types = {type(block).__name__ for _, module in unet_motion.named_modules()
                   if hasattr(module, "transformer_blocks") for block in module.transformer_blocks}
    assert "FreeNoiseTransformerBlock" not in block_types


def test_long_clip_runs_spatial_layers_sixteen_frames_at_a_time(tiny_manager, tmp_path: Path) -> None:
    unet_motion = models.motion_unet(tiny_manager)
    resnet = unet_motion.down_blocks[0].resnets[0]
    batches: list[int] = []
    hook = resnet.register_forward_hook(lambda module, args, out: batches.append(out.shape[0]))
    try:
        request = AnimateRequest("a portrait", motions=[("zoom-out", 1.0)], **{**SMALL, "frames": 18})
        result = animate(tiny_manager, request, tmp_path, name="split")
    finally:
        hook.remove()
    assert result.metadata["split_inference"] is True
    # Guidance doubles the batch: 36 images at once without split inference.
    assert batches and max(batches) <= models.SPLIT_FRAMES
    assert not any(type(m).__name__ == "SplitInferenceModule" for m in unet_motion.modules())  # unwrapped
    assert models.unwrap_split_inference(unet_motion) == 0


def test_interpolation_doubles_the_frame_rate(tiny_manager, tmp_path: Path) -> None:
    result = animate(tiny_manager, AnimateRequest("a portrait", interpolate="blend", **SMALL), tmp_path)
    info = probe_video(result.mp4_path)
    assert (result.frames, result.fps, info.frames, info.fps) == (7, 16, 7, 16.0)


def test_cancel_stops_within_a_step_and_writes_nothing(tiny_manager, tmp_path: Path, likeness_lora: Path) -> None:
    unet_motion = models.motion_unet(tiny_manager)
    before = state_snapshot(unet_motion)
    token = CancelToken()
    steps_seen: list[str] = []

    def progress(fraction: float, message: str = "") -> None:
        if message.startswith("animating, step"):
            steps_seen.append(message)
            token.cancel()

    request = AnimateRequest("a portrait", likeness=Likeness(likeness_lora), motions=[("zoom-in", 1.0)],
                             **{**SMALL, "steps": 5})
    with pytest.raises(CancelledError):
        animate(tiny_manager, request, tmp_path / "out", progress=progress, cancel=token)
    assert steps_seen == ["animating, step 1/5"]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert same_state(unet_motion, before) and models.module_is_clean(unet_motion)
    assert models.module_is_clean(tiny_manager.sd_components("base")["text_encoder"])


def test_fast_mode_runs_lightning_in_four_steps(tiny_manager, tmp_path: Path) -> None:
    assert models.fast_available(tiny_manager)
    result = animate(tiny_manager, AnimateRequest("a portrait", fast=True, **SMALL), tmp_path, name="fast")
    assert (result.metadata["steps"], result.metadata["guidance"]) == (4, 1.0)
    assert "animatediff_lightning" in result.metadata["motion_model"]
    assert any("Fast mode" in w for w in result.warnings)
    assert models.motion_unet_key(adapter_role="animatediff_lightning") in tiny_manager.cache
    assert probe_video(result.mp4_path).frames == 4


def test_fast_mode_without_lightning_weights_names_the_download(tiny_home: Path, tmp_path: Path) -> None:
    settings = settings_from_env(
        {}, home=tiny_home, profile="tiny", offline=True,
        model_overrides={"animatediff_lightning": str(tmp_path / "absent.safetensors")},
    )
    manager = ModelManager(settings)
    assert not models.fast_available(manager)
    with pytest.raises(MissingWeightsError, match="download --roles animatediff_lightning"):
        animate(manager, AnimateRequest("a portrait", fast=True, **SMALL), tmp_path)
    assert not list(tmp_path.glob("*.mp4"))


@pytest.mark.parametrize("name", ["../escape", "sub/clip", ".hidden", ""])
def test_output_name_cannot_leave_the_output_folder(tiny_manager, tmp_path: Path, name: str) -> None:
    with pytest.raises(InputError, match="plain file name"):
        animate(tiny_manager, AnimateRequest("a portrait", **SMALL), tmp_path / "out", name=name)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("escape*"))


def test_without_v3_weights_text_mode_falls_back_to_v152_and_says_so(tiny_home: Path, tmp_path: Path) -> None:
    settings = settings_from_env(
        {}, home=tiny_home, profile="tiny", offline=True,
        model_overrides={"motion_adapter_v3": str(tmp_path / "absent")},
    )
    manager = ModelManager(settings)
    result = animate(manager, AnimateRequest("a portrait", **SMALL), tmp_path, name="fallback")
    assert result.metadata["motion_model"] == "tiny-random/motion_adapter"
    assert result.metadata["domain_adapter"] is None
    assert any("download --roles motion_adapter_v3,domain_adapter_v3" in w for w in result.warnings)
    # SparseCtrl keyframes need v3: a clear missing-weights error, nothing written.
    with pytest.raises(MissingWeightsError, match="motion_adapter_v3"):
        animate(manager, AnimateRequest("a portrait", init_image=_portrait(), **SMALL), tmp_path / "none")
    assert not (tmp_path / "none").exists()
