"""The tiny IP-Adapter Plus Face and image encoder follow the published layout, and diffusers loads them."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from portrait_studio.errors import InputError, MissingWeightsError
from portrait_studio.instant.adapter import (
    AdapterWeights,
    FaceCondition,
    adapter_weights,
    face_adapter_applied,
    read_adapter_file,
)
from portrait_studio.instant.embeddings import encode_faces, negative_encoding
from portrait_studio.instant.tiny import TINY_ENCODER, cross_attention_layers
from portrait_studio.models.tiny import TEXT_DIM, tiny_unet_kwargs
from tests.instant.conftest import assert_unchanged, processors_and_state


def test_adapter_file_has_the_published_keys_and_shapes(tiny_manager) -> None:
    path = tiny_manager.locator.path("ip_adapter_face")
    assert path.name == "ip-adapter-plus-face_sd15.safetensors"
    tensors = read_adapter_file(path)
    proj = {k[len("image_proj."):]: v.shape for k, v in tensors.items() if k.startswith("image_proj.")}
    assert proj["latents"] == (1, 16, TEXT_DIM)  # 16 queries of width cross_attention_dim
    assert proj["proj_in.weight"] == (TEXT_DIM, TINY_ENCODER["hidden_size"])
    assert proj["proj_out.weight"] == (TEXT_DIM, TEXT_DIM) and proj["norm_out.weight"] == (TEXT_DIM,)
    for i in range(4):  # depth 4 is part of the format: diffusers renames layers 0-3 only
        assert proj[f"layers.{i}.0.to_q.weight"][0] % 64 == 0  # heads = rows // 64
        assert proj[f"layers.{i}.0.to_kv.weight"][0] == 2 * proj[f"layers.{i}.0.to_q.weight"][0]
        assert proj[f"layers.{i}.1.1.weight"] == (4 * TEXT_DIM, TEXT_DIM)
        assert proj[f"layers.{i}.1.3.weight"] == (TEXT_DIM, 4 * TEXT_DIM)
    assert "layers.4.0.to_q.weight" not in proj
    layers = cross_attention_layers(tiny_unet_kwargs())
    ip_keys = sorted(k for k in tensors if k.startswith("ip_adapter."))
    expected = sorted(f"ip_adapter.{2 * i + 1}.to_{kv}_ip.weight" for i in range(len(layers)) for kv in "kv")
    assert ip_keys == expected  # odd numbers: the self-attention layers take the even ones
    for index, (_, hidden) in enumerate(layers):
        assert tensors[f"ip_adapter.{2 * index + 1}.to_k_ip.weight"].shape == (hidden, TEXT_DIM)


def test_the_bin_twin_reads_the_same_tensors_with_weights_only(tiny_manager, tmp_path) -> None:
    flat = read_adapter_file(tiny_manager.locator.path("ip_adapter_face"))
    nested = {"image_proj": {}, "ip_adapter": {}}
    for key, value in flat.items():
        group, rest = key.split(".", 1)
        nested[group][rest] = value
    torch.save(nested, tmp_path / "ip-adapter-plus-face_sd15.bin")
    again = read_adapter_file(tmp_path / "ip-adapter-plus-face_sd15.bin")
    assert again.keys() == flat.keys() and all(torch.equal(again[k], flat[k]) for k in flat)
    torch.save({"state": 1}, tmp_path / "other.bin")
    with pytest.raises(MissingWeightsError, match="not an IP-Adapter Plus file"):
        read_adapter_file(tmp_path / "other.bin")


def test_image_encoder_folder_is_a_clip_vision_model_with_projection(tiny_manager) -> None:
    from portrait_studio.instant.adapter import encoder_folder

    folder = encoder_folder(tiny_manager)
    assert folder.parts[-2:] == ("models", "image_encoder")
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["CLIPVisionModelWithProjection"] and config["hidden_act"] == "gelu"
    assert (folder / "model.safetensors").is_file()


def test_adapter_steers_the_image_and_the_unet_comes_back_identical(tiny_manager) -> None:
    face = Image.new("RGB", (64, 64), (150, 110, 90))
    positive = encode_faces(tiny_manager, [face, face])
    assert positive.shape == (2, (TINY_ENCODER["image_size"] // TINY_ENCODER["patch_size"]) ** 2 + 1,
                              TINY_ENCODER["hidden_size"])
    condition = FaceCondition(positive, negative_encoding(tiny_manager, 2), 0.8, "test")
    weights = adapter_weights(tiny_manager)
    with tiny_manager.sd_pipeline("txt2img") as pipe:
        before = processors_and_state(pipe.unet)

        def render(extra: dict) -> torch.Tensor:
            return torch.from_numpy(pipe("a face", num_inference_steps=2, guidance_scale=7.0, width=64, height=64,
                                         generator=torch.Generator().manual_seed(0), output_type="np",
                                         **extra).images)

        plain = render({})
        with face_adapter_applied(pipe, weights, 0.8):
            loaded = type(pipe.unet.encoder_hid_proj.image_projection_layers[0]).__name__
            steered = render(condition.call_kwargs(7.0, tiny_manager.device, tiny_manager.dtype))
        assert loaded == "IPAdapterPlusImageProjection"
        assert_unchanged(pipe.unet, before)
        assert (steered - plain).abs().max() > 0.05
        assert torch.equal(render({}), plain)
        with pytest.raises(RuntimeError, match="boom"), face_adapter_applied(pipe, weights, 0.5):
            raise RuntimeError("boom")
        assert_unchanged(pipe.unet, before)


def test_encodings_from_another_encoder_are_refused(tiny_manager) -> None:
    from portrait_studio.instant.adapter import check_fits

    weights = adapter_weights(tiny_manager)
    assert isinstance(weights, AdapterWeights)
    unet = tiny_manager.sd_components("base", ("unet",))["unet"]
    with pytest.raises(InputError, match="another image encoder"):
        check_fits(weights, unet, torch.zeros(1, 257, 1280), "Ada")
