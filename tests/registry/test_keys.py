"""Key grammar: every accepted spelling maps to the same module, and kohya names unflatten exactly."""

from __future__ import annotations

import pytest
import torch

from portrait_studio.registry import base_module_shapes
from portrait_studio.registry.keys import KeyGrammarError, flatten_module, parse_key, unflatten_module

MODULE = "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_out.0"


@pytest.mark.parametrize(
    "key, part",
    [
        (f"unet.{MODULE}.lora_A.weight", "down"),
        (f"unet.{MODULE}.lora_B.weight", "up"),
        (f"unet.{MODULE}.lora.down.weight", "down"),
        (f"{MODULE}.lora.up.weight", "up"),  # very old files without a prefix
        ("unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.processor.to_out_lora.down.weight", "down"),
        (f"unet.{MODULE}.alpha", "alpha"),
    ],
)
def test_diffusers_spellings(key: str, part: str) -> None:
    parsed = parse_key(key)
    assert (parsed.grammar, parsed.component, parsed.module, parsed.part) == ("diffusers", "unet", MODULE, part)


def test_text_encoder_spellings_agree() -> None:
    spellings = [
        "text_encoder.text_model.encoder.layers.3.self_attn.k_proj.lora_A.weight",
        "text_encoder.encoder.layers.3.self_attn.k_proj.lora_A.weight",  # flattened CLIPTextModel
        "text_encoder.text_model.encoder.layers.3.self_attn.k_proj.lora_linear_layer.down.weight",
    ]
    modules = {parse_key(key).module for key in spellings}
    assert modules == {"text_model.encoder.layers.3.self_attn.k_proj"}


def test_kohya_spelling() -> None:
    parsed = parse_key("lora_te_text_model_encoder_layers_11_mlp_fc2.lora_up.weight")
    assert (parsed.grammar, parsed.component, parsed.part) == ("kohya", "text_encoder", "up")
    assert unflatten_module(parsed.module) == "text_model.encoder.layers.11.mlp.fc2"


@pytest.mark.parametrize(
    "key, reason",
    [
        ("lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", "SDXL"),
        ("lora_unet_x.hada_w1_a", "not a LoRA tensor name"),
        ("vae.decoder.conv_in.lora_A.weight", "names no component"),
        (f"unet.{MODULE}.lora_A.default.weight", "not a LoRA tensor name"),
        (f"unet.{MODULE}.lora_A.lora_A.weight", "unsupported LoRA layout"),
        ("model.diffusion_model.input_blocks.1.1.weight", "not a LoRA tensor name"),
    ],
)
def test_refused_keys(key: str, reason: str) -> None:
    with pytest.raises(KeyGrammarError, match=reason):
        parse_key(key)


def test_kohya_names_unflatten_for_every_sd15_layer() -> None:
    """Real SD1.5 sizes on the meta device (no memory, no weights): every linear/conv name round-trips."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(cross_attention_dim=768, attention_head_dim=8)
        text_encoder = CLIPTextModel(CLIPTextConfig())
    shapes = base_module_shapes(unet, text_encoder)
    assert len(shapes) > 300
    assert shapes["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"] == (320, 768)
    for target in shapes:
        module = target.split(".", 1)[1]
        assert unflatten_module(flatten_module(module)) == module, module
