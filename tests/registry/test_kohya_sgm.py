"""LoRA files users bring: kohya files with original-SD UNet names, LoCon conv LoRAs, impossible ranks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from portrait_studio.errors import InputError
from portrait_studio.registry import LoraRegistry, loras_applied
from portrait_studio.registry.keys import sgm_to_diffusers
from portrait_studio.registry.validate import validate_lora_file
from tests.registry.lora_test_files import pipeline_image

# kohya name in the original SD layout -> the diffusers module it patches (tiny UNet: 2 layers per block,
# down_blocks.0 with attentions, up_blocks.1 with attentions).
SGM_TARGETS = {
    "input_blocks_1_1_transformer_blocks_0_attn1_to_q": "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
    "input_blocks_2_1_transformer_blocks_0_attn2_to_k": "down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k",
    "middle_block_1_proj_in": "mid_block.attentions.0.proj_in",
    "output_blocks_5_1_transformer_blocks_0_attn1_to_out_0":
        "up_blocks.1.attentions.2.transformer_blocks.0.attn1.to_out.0",
    # LoCon: ResBlock convolutions (3x3) and the time-embedding projection.
    "input_blocks_1_0_in_layers_2": "down_blocks.0.resnets.0.conv1",
    "output_blocks_0_0_out_layers_3": "up_blocks.0.resnets.0.conv2",
    "input_blocks_2_0_emb_layers_1": "down_blocks.0.resnets.1.time_emb_proj",
}
TEXT_TARGET = "text_model.encoder.layers.0.self_attn.q_proj"


def _sgm_kohya_file(path: Path, base_shapes: dict, rank: int = 4, seed: int = 0) -> Path:
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    targets = [(f"lora_unet_{flat}", f"unet.{module}") for flat, module in SGM_TARGETS.items()]
    targets.append(("lora_te_" + TEXT_TARGET.replace(".", "_"), f"text_encoder.{TEXT_TARGET}"))
    for name, target in targets:
        out_features, in_features = base_shapes[target]
        conv = target.endswith(("conv1", "conv2"))
        down_shape = (rank, in_features, 3, 3) if conv else (rank, in_features)
        up_shape = (out_features, rank, 1, 1) if conv else (out_features, rank)
        if target.endswith("proj_in"):  # a 1x1 conv in SD1.5
            down_shape, up_shape = (rank, in_features, 1, 1), (out_features, rank, 1, 1)
        tensors[f"{name}.lora_down.weight"] = torch.randn(down_shape, generator=generator) * 0.5
        tensors[f"{name}.lora_up.weight"] = torch.randn(up_shape, generator=generator) * 0.5
        tensors[f"{name}.alpha"] = torch.tensor(float(rank))
    save_file(tensors, str(path), metadata={"ss_network_module": "lycoris.kohya"})
    return path


def test_sgm_block_arithmetic_is_diffusers_own() -> None:
    mapped = sgm_to_diffusers(list(SGM_TARGETS))
    assert {flat: name for flat, name in mapped.items()} == {
        flat: module.replace(".", "_") for flat, module in SGM_TARGETS.items()
    }


@pytest.mark.parametrize("with_base", [True, False])
def test_original_sd_names_validate_to_diffusers_modules(tmp_path, base_shapes, with_base) -> None:
    path = _sgm_kohya_file(tmp_path / "sgm.safetensors", base_shapes)
    info = validate_lora_file(path, base_shapes=base_shapes if with_base else None)
    assert {(m.component, m.module) for m in info.modules} == {
        *(("unet", module) for module in SGM_TARGETS.values()), ("text_encoder", TEXT_TARGET),
    }
    assert {m.module for m in info.modules if m.conv} == {
        "mid_block.attentions.0.proj_in", "down_blocks.0.resnets.0.conv1", "up_blocks.0.resnets.0.conv2",
    }


def test_imported_sgm_locon_file_loads_in_diffusers_and_changes_the_image(tmp_path, base_shapes, tiny_pipe) -> None:
    registry = LoraRegistry(tmp_path / "registry")
    record = registry.import_file("local", _sgm_kohya_file(tmp_path / "sgm.safetensors", base_shapes),
                                  base_shapes=base_shapes)
    stored = next(record.folder.glob("*.safetensors"))
    plain = pipeline_image(tiny_pipe)
    with loras_applied(tiny_pipe, [(stored, 1.0)]):
        styled = pipeline_image(tiny_pipe)
        conv1 = tiny_pipe.unet.down_blocks[0].resnets[0].conv1
        assert hasattr(conv1, "lora_A")  # peft wrapped the 3x3 conv: the LoCon part was loaded, not dropped
    assert (styled - plain).abs().max() > 1e-3


def test_a_rank_larger_than_the_layer_is_refused_as_malformed(tmp_path, base_shapes) -> None:
    target = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    out_features, in_features = base_shapes[target]
    rank = min(out_features, in_features) + 1
    name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    path = tmp_path / "overrank.safetensors"
    save_file({f"{name}.lora_down.weight": torch.zeros(rank, in_features),
               f"{name}.lora_up.weight": torch.zeros(out_features, rank)}, str(path))
    with pytest.raises(InputError, match=rf"rank {rank}, more than its layer's {in_features} inputs .* malformed"):
        validate_lora_file(path, base_shapes=base_shapes)


def test_mixed_original_and_diffusers_unet_names_are_refused(tmp_path, base_shapes) -> None:
    path = _sgm_kohya_file(tmp_path / "sgm.safetensors", base_shapes)
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    tensors["lora_unet_down_blocks_1_attentions_0_proj_out.lora_down.weight"] = torch.zeros(4, 32, 1, 1)
    tensors["lora_unet_down_blocks_1_attentions_0_proj_out.lora_up.weight"] = torch.zeros(32, 4, 1, 1)
    save_file(tensors, str(path))
    with pytest.raises(InputError, match="mixes original-SD"):
        validate_lora_file(path, base_shapes=base_shapes)
