"""AnimateDiff v3 roles in their published formats, and which motion module each mode uses."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file

from portrait_studio.animate import models
from portrait_studio.models.locator import is_random_weights
from portrait_studio.models.roles import ROLES, HubSource
from portrait_studio.registry.apply import loras_applied
from portrait_studio.registry.validate import validate_lora_file

# unet.<spatial block>.attentions.<i>.transformer_blocks.0.attn<1|2>.processor.to_<q|k|v|out>_lora.<down|up>.weight
DOMAIN_ADAPTER_KEY = re.compile(
    r"unet\.(?:(?:down|up)_blocks\.\d+|mid_block)\.attentions\.\d+\.transformer_blocks\.0\."
    r"attn[12]\.processor\.to_(q|k|v|out)_lora\.(down|up)\.weight"
)


def test_v3_roles_point_at_the_published_repositories() -> None:
    expected = {
        "motion_adapter_v3": "guoyww/animatediff-motion-adapter-v1-5-3",
        "domain_adapter_v3": "guoyww/animatediff-motion-lora-v1-5-3",
        "sparsectrl_rgb": "guoyww/animatediff-sparsectrl-rgb",
        "sparsectrl_scribble": "guoyww/animatediff-sparsectrl-scribble",
    }
    for role, repo in expected.items():
        source = ROLES[role].source
        assert isinstance(source, HubSource) and source.repo_id == repo
    assert ROLES["domain_adapter_v3"].source.filename == "diffusion_pytorch_model.safetensors"
    for role in ("motion_adapter_v3", "sparsectrl_rgb", "sparsectrl_scribble"):
        assert set(ROLES[role].source.allow_patterns) == {"config.json", "diffusion_pytorch_model.safetensors"}


def test_v3_motion_adapter_has_no_mid_block_module_and_32_positions(tiny_manager) -> None:
    path = tiny_manager.locator.path("motion_adapter_v3")
    config = json.loads((path / "config.json").read_text())
    assert config["_class_name"] == "MotionAdapter" and is_random_weights(path)
    assert config["use_motion_mid_block"] is False and config["motion_max_seq_length"] == 32
    keys = load_file(str(path / "diffusion_pytorch_model.safetensors")).keys()
    assert not [k for k in keys if k.startswith("mid_block")]


def test_domain_adapter_covers_every_spatial_attention_projection(tiny_manager) -> None:
    path = tiny_manager.locator.path("domain_adapter_v3")
    assert path.name == "diffusion_pytorch_model.safetensors" and is_random_weights(path)
    tensors = load_file(str(path))
    assert [k for k in tensors if not DOMAIN_ADAPTER_KEY.fullmatch(k)] == []
    unet = tiny_manager.sd_components()["unet"]
    projections = {
        name for name, module in unet.named_modules()
        if isinstance(module, torch.nn.Linear) and re.search(r"\.attn[12]\.to_(q|k|v|out\.0)$", name)
    }
    patched = {re.sub(r"\.processor\.to_(q|k|v|out)_lora\..*", r".to_\1", k[len("unet."):]) for k in tensors}
    assert {p.replace("to_out", "to_out.0") for p in patched} == projections
    validate_lora_file(path)  # the registry's checks accept the published grammar


def test_domain_adapter_loads_on_the_spatial_layers_of_the_v3_motion_unet(tiny_manager) -> None:
    path = tiny_manager.locator.path("domain_adapter_v3")
    pairs = len(load_file(str(path))) // 2
    with models.motion_pipeline(tiny_manager, adapter_role=models.V3_ROLE) as pipe, loras_applied(pipe, [(path, 1.0)]):
        lora_layers = [n for n, m in pipe.unet.named_modules() if hasattr(m, "lora_A") and len(m.lora_A)]
        assert len(lora_layers) == pairs
        assert not [name for name in lora_layers if ".motion_modules." in name]
    assert models.module_is_clean(pipe.unet)


@pytest.mark.parametrize(("kind", "channels", "simplified"), [("rgb", 4, True), ("scribble", 3, False)])
def test_sparsectrl_encoders_have_the_published_config(tiny_manager, kind: str, channels: int, simplified: bool):
    path = tiny_manager.locator.path(f"sparsectrl_{kind}")
    config = json.loads((path / "config.json").read_text())
    assert config["_class_name"] == "SparseControlNetModel"
    assert config["conditioning_channels"] == channels
    assert config["use_simplified_condition_embedding"] is simplified
    assert config["concat_conditioning_mask"] is True and config["motion_max_seq_length"] == 32
    controlnet = models.sparse_controlnet(tiny_manager, kind)
    assert models.sparse_controlnet(tiny_manager, kind) is controlnet  # one cache entry
    unet_config = tiny_manager.sd_components()["unet"].config
    assert tuple(controlnet.config.block_out_channels) == tuple(unet_config.block_out_channels)


def test_each_mode_names_its_motion_module() -> None:
    assert models.adapter_role_for("sparsectrl", has_camera_motion=False) == models.V3_ROLE
    assert models.adapter_role_for("txt2vid", has_camera_motion=False) == models.V3_ROLE
    assert models.adapter_role_for("vid2vid", has_camera_motion=False) == models.V3_ROLE
    # The camera-motion LoRAs were trained on v1.5.2.
    assert models.adapter_role_for("txt2vid", has_camera_motion=True) == models.MOTION_ADAPTER_ROLE
    assert models.adapter_role_for("vid2vid", has_camera_motion=True) == models.MOTION_ADAPTER_ROLE
    assert models.adapter_role_for("txt2vid", has_camera_motion=True, fast=True) == models.LIGHTNING_ROLE
    assert models.uses_domain_adapter(models.V3_ROLE) and not models.uses_domain_adapter(models.MOTION_ADAPTER_ROLE)


def test_switching_modes_twice_loads_nothing_new(tiny_manager) -> None:
    modes = [("txt2vid", models.V3_ROLE), ("txt2vid", models.MOTION_ADAPTER_ROLE), ("sparsectrl", models.V3_ROLE),
             ("vid2vid", models.MOTION_ADAPTER_ROLE)]
    for kind, role in modes:  # first round: whatever is not cached yet gets loaded
        with models.motion_pipeline(tiny_manager, kind, adapter_role=role):
            pass
    assert models.motion_unet_key(adapter_role=models.V3_ROLE) in tiny_manager.cache
    assert models.motion_unet_key(adapter_role=models.MOTION_ADAPTER_ROLE) in tiny_manager.cache
    loads = tiny_manager.cache.stats.loads
    for _ in range(2):
        for kind, role in modes:
            with models.motion_pipeline(tiny_manager, kind, adapter_role=role) as pipe:
                assert pipe.unet is tiny_manager.cache.get(models.motion_unet_key(adapter_role=role), lambda: None)
    assert tiny_manager.cache.stats.loads == loads
