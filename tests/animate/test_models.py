"""Motion models: the tiny motion-LoRA format, the motion UNet cache entry and the from_pipe regression."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from portrait_studio.animate import models
from portrait_studio.models.locator import is_random_weights
from portrait_studio.models.manager import ModelManager
from portrait_studio.models.roles import MOTION_LORAS
from portrait_studio.registry.apply import loras_applied

# unet.<block>.motion_modules.<i>.transformer_blocks.0.attn<1|2>.processor.to_<q|k|v|out>_lora.<down|up>.weight
MOTION_LORA_KEY = re.compile(
    r"unet\.(?:(?:down|up)_blocks\.\d+|mid_block)\.motion_modules\.\d+\.transformer_blocks\.0\."
    r"attn[12]\.processor\.to_(q|k|v|out)_lora\.(down|up)\.weight"
)


def _module_of(key: str) -> str:
    """``unet.X.processor.to_out_lora.up.weight`` -> ``X.to_out.0`` (the module the pair patches)."""
    parent, projection = re.match(r"unet\.(.+)\.processor\.to_(q|k|v|out)_lora\.", key).groups()
    return f"{parent}.to_{projection}" + (".0" if projection == "out" else "")


def test_motion_lora_files_use_the_published_key_grammar(tiny_manager) -> None:
    unet_motion = models.motion_unet(tiny_manager)
    projections = {
        name for name, module in unet_motion.named_modules()
        if ".motion_modules." in name and isinstance(module, torch.nn.Linear)
        and name.endswith((".to_q", ".to_k", ".to_v", ".to_out.0"))
    }
    signatures = set()
    for motion in MOTION_LORAS:
        path = tiny_manager.locator.path("motion_lora_" + motion.replace("-", "_"))
        assert path.name == "diffusion_pytorch_model.safetensors" and is_random_weights(path)
        tensors = load_file(str(path))
        assert [key for key in tensors if not MOTION_LORA_KEY.fullmatch(key)] == []
        assert {_module_of(key) for key in tensors} == projections  # every projection, nothing else
        down = tensors["unet.mid_block.motion_modules.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight"]
        up = tensors["unet.mid_block.motion_modules.0.transformer_blocks.0.attn1.processor.to_q_lora.up.weight"]
        assert down.shape[0] == up.shape[1] and down.shape[1] == up.shape[0]
        signatures.add(float(down.sum()))
    assert len(signatures) == len(MOTION_LORAS), "each motion needs its own weights"


def test_diffusers_loads_every_motion_lora_pair_onto_the_motion_unet(tiny_manager) -> None:
    path = tiny_manager.locator.path("motion_lora_rolling_clockwise")
    pairs = len(load_file(str(path))) // 2
    with models.motion_pipeline(tiny_manager) as pipe, loras_applied(pipe, [(path, 1.0)]):
        lora_layers = [n for n, m in pipe.unet.named_modules() if hasattr(m, "lora_A") and len(m.lora_A)]
        assert len(lora_layers) == pairs
        assert all(".motion_modules." in name for name in lora_layers)
    assert models.module_is_clean(pipe.unet)


def test_motion_unet_is_its_own_cache_entry(tiny_manager) -> None:
    unet_motion = models.motion_unet(tiny_manager)
    assert type(unet_motion).__name__ == "UNetMotionModel"
    assert models.motion_unet_key() == "base+motion_adapter:unet_motion"
    assert models.motion_unet_key() in tiny_manager.cache
    assert models.motion_unet(tiny_manager) is unet_motion  # built once


@pytest.mark.parametrize("adapter_role", [models.MOTION_ADAPTER_ROLE, models.V3_ROLE])
def test_motion_unet_holds_the_base_unets_spatial_tensors_not_a_copy(tiny_manager, adapter_role: str) -> None:
    base_unet = tiny_manager.sd_components()["unet"]
    unet_motion = models.motion_unet(tiny_manager, adapter_role=adapter_role)
    base_params = {id(p) for p in base_unet.parameters()}
    motion_params = list(unet_motion.parameters())
    assert base_params <= {id(p) for p in motion_params}, "every spatial Parameter is the base UNet's own object"
    own = [p for p in motion_params if id(p) not in base_params]
    assert own and all(".motion_modules." in n for n, p in unet_motion.named_parameters() if id(p) not in base_params)
    # The cache counts only the motion modules, and using the motion UNet places the base UNet too.
    key = models.motion_unet_key(adapter_role=adapter_role)
    entry = tiny_manager.cache._entries[key]
    own_buffers = list(unet_motion.buffers())  # the motion modules' positional tables; the base UNet has none
    assert not list(base_unet.buffers())
    assert entry.size == sum(t.numel() * t.element_size() for t in own + own_buffers)
    assert entry.shares == ("base:unet",)
    with tiny_manager.cache.use(key):
        assert tiny_manager.cache.is_locked("base:unet")
    assert not tiny_manager.cache.is_locked("base:unet")


def test_diffusers_from_pipe_still_fails_with_an_unfused_lora(tiny_settings, likeness_lora: Path) -> None:
    """The measured failure the cache design avoids. If this starts passing, diffusers fixed it (fine)."""
    from diffusers import AnimateDiffPipeline

    manager = ModelManager(tiny_settings)
    adapter = models.load_motion_adapter(manager)
    with manager.sd_pipeline("txt2img") as sd_pipe, loras_applied(sd_pipe, [(likeness_lora, 1.0)]):
        with pytest.raises(RuntimeError, match=r"Error\(s\) in loading state_dict"):
            AnimateDiffPipeline.from_pipe(sd_pipe, motion_adapter=adapter)


def test_motion_unet_builds_clean_while_stylize_has_a_lora_loaded(tiny_settings, likeness_lora: Path) -> None:
    """Regression: the motion UNet comes from the base UNet on disk, not from the LoRA-carrying cached one."""
    manager = ModelManager(tiny_settings)  # a cold cache of its own
    with manager.sd_pipeline("txt2img") as sd_pipe, loras_applied(sd_pipe, [(likeness_lora, 1.0)]):
        assert not models.module_is_clean(sd_pipe.unet)  # Stylize mid-request
        unet_motion = models.motion_unet(manager)
    assert models.module_is_clean(unet_motion)
    clean = models.load_clean_base_unet(manager).state_dict()
    motion_state = unet_motion.state_dict()
    spatial = [k for k in clean if k in motion_state]
    assert len(spatial) > 0.9 * len(clean)
    assert all(torch.equal(motion_state[k], clean[k]) for k in spatial)


def test_lightning_adapter_loads_strictly_from_a_bare_state_dict(tiny_manager) -> None:
    path = tiny_manager.locator.path("animatediff_lightning")
    assert path.name == "animatediff_lightning_4step_diffusers.safetensors"
    adapter = models.load_motion_adapter(tiny_manager, "animatediff_lightning")
    stored = load_file(str(path))
    assert adapter.state_dict().keys() == stored.keys()
    assert all(torch.equal(adapter.state_dict()[k], v) for k, v in stored.items())
