"""Portrait -> animation with SparseCtrl keyframes, and the shared models unchanged after every mode.

The motion UNets hold the base UNet's spatial Parameters (one copy), so a LoRA fused into a motion UNet
is fused into Stylize's UNet for the length of the request. These tests prove the request gives them
back bit for bit, also on the fused path a GPU takes (``should_fuse`` forced on: a fake CUDA decision).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from portrait_studio.animate import models
from portrait_studio.animate import service as animate_service
from portrait_studio.animate.request import AnimateRequest, Likeness
from portrait_studio.animate.service import animate
from portrait_studio.media.video import probe_video
from portrait_studio.registry.apply import loras_applied
from tests.animate.conftest import SMALL, read_zip_frames, same_state, state_snapshot


def _image(name: str) -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def _frames(result) -> np.ndarray:
    return np.stack(read_zip_frames(result.frames_zip)).astype(float)


def test_portrait_is_keyframe_zero_of_a_v3_sparsectrl_animation(tiny_manager, tmp_path: Path) -> None:
    astronaut = animate(tiny_manager, AnimateRequest("a portrait", init_image=_image("astronaut"), **SMALL),
                        tmp_path, name="astronaut")
    info = probe_video(astronaut.mp4_path)
    assert (info.frames, info.codec) == (4, "h264")
    meta = astronaut.metadata
    assert (meta["mode"], meta["keyframes"], meta["keyframe_strength"]) == ("sparsectrl", [0], 1.0)
    assert meta["motion_model"] == "tiny-random/motion_adapter_v3"
    assert meta["domain_adapter"] == "tiny-random/domain_adapter_v3"
    assert meta["keyframe_encoder"] == "tiny-random/sparsectrl_rgb"
    coffee = animate(tiny_manager, AnimateRequest("a portrait", init_image=_image("coffee"), **SMALL),
                     tmp_path, name="coffee")
    assert np.abs(_frames(astronaut) - _frames(coffee)).mean() > 1.0, "the keyframe must drive the frames"


def test_an_end_image_becomes_the_last_keyframe(tiny_manager, tmp_path: Path) -> None:
    start_only = animate(tiny_manager, AnimateRequest("a portrait", init_image=_image("astronaut"), **SMALL),
                         tmp_path, name="start")
    request = AnimateRequest("a portrait", init_image=_image("astronaut"), end_image=_image("coffee"),
                             keyframe_strength=1.5, **SMALL)
    both = animate(tiny_manager, request, tmp_path, name="both")
    assert both.metadata["keyframes"] == [0, 3] and both.metadata["end_image"] is True
    assert np.abs(_frames(both) - _frames(start_only)).mean() > 1.0


def _shared_modules(manager) -> dict:
    parts = manager.sd_components("base")
    return {
        "base unet": parts["unet"], "vae": parts["vae"], "text encoder": parts["text_encoder"],
        "v2 motion unet": models.motion_unet(manager, adapter_role=models.MOTION_ADAPTER_ROLE),
        "v3 motion unet": models.motion_unet(manager, adapter_role=models.V3_ROLE),
        "sparsectrl rgb": models.sparse_controlnet(manager, "rgb"),
    }


@pytest.mark.parametrize(
    ("mode", "fused"),
    [("sparsectrl", False), ("sparsectrl", True), ("video2video", True), ("txt2vid", True)],
)
def test_every_mode_leaves_the_shared_models_as_they_were(
    tiny_manager, tmp_path: Path, likeness_lora: Path, monkeypatch, mode: str, fused: bool
) -> None:
    monkeypatch.setattr(animate_service, "should_fuse", lambda manager: fused)
    modules = _shared_modules(tiny_manager)
    before = {label: state_snapshot(module) for label, module in modules.items()}
    loads = tiny_manager.cache.stats.loads
    extra: dict = {"likeness": Likeness(likeness_lora, 0.9, "Anna", "annaperson")}
    if mode != "txt2vid":
        extra.update(init_image=_image("astronaut"), portrait_mode=mode)
    if mode == "video2video":
        extra["motions"] = [("zoom-in", 0.8)]
    result = animate(tiny_manager, AnimateRequest("a portrait", **extra, **SMALL), tmp_path)
    assert result.metadata["mode"] == mode
    for label, module in _shared_modules(tiny_manager).items():
        assert module is modules[label], f"{label} was rebuilt instead of restored"
        assert same_state(module, before[label]), f"{label} changed"
        assert models.module_is_clean(module), f"{label} still carries LoRA layers"
    assert tiny_manager.cache.stats.loads == loads
    base_params = {id(p) for p in modules["base unet"].parameters()}
    assert base_params <= {id(p) for p in modules["v3 motion unet"].parameters()}, "sharing survived the request"


def test_a_fused_stylize_lora_reaches_the_motion_unets_and_leaves_with_the_request(
    tiny_manager, likeness_lora: Path
) -> None:
    """Stylize fuses on a GPU: while it runs the motion UNets see the fused weights (one copy), afterwards not."""
    v3 = models.motion_unet(tiny_manager, adapter_role=models.V3_ROLE)
    before = state_snapshot(v3)
    with tiny_manager.sd_pipeline("txt2img") as pipe, loras_applied(pipe, [(likeness_lora, 1.0)], fuse=True):
        assert not same_state(v3, before)
    assert same_state(v3, before) and models.module_is_clean(v3)
