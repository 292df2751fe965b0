"""Export to kohya and diffusers: same effect through diffusers' own loader, and re-importable."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from portrait_studio.errors import InputError
from portrait_studio.registry import LoraRegistry, validate_lora_file
from tests.registry.lora_test_files import lora_tensors, pipeline_image, write_kohya


def _metadata(path: Path) -> dict[str, str]:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + length]).get("__metadata__", {})


def _image_with(pipe, path: Path) -> torch.Tensor:  # noqa: ANN001
    pipe.load_lora_weights(str(path), adapter_name="check")
    try:
        return pipeline_image(pipe)
    finally:
        pipe.unload_lora_weights()


@pytest.fixture()
def imported(tmp_path: Path, base_shapes: dict):  # noqa: ANN201
    metadata = {"modelspec.title": "Anna", "modelspec.trigger_phrase": "sks woman",
                "ss_dataset_dirs": json.dumps({"/home/bob/private_photos": {"n_repeats": 10}})}
    source = write_kohya(tmp_path / "anna.safetensors", lora_tensors(base_shapes, amplitude=0.6), alpha=2.0,
                         metadata=metadata)
    registry = LoraRegistry(tmp_path / "registry")
    return registry, source, registry.import_file("local", source, base_shapes=base_shapes)


def test_round_trip_gives_the_same_image_in_both_formats(tiny_pipe, tmp_path: Path, imported) -> None:  # noqa: ANN001
    registry, source, record = imported
    plain = pipeline_image(tiny_pipe)
    original = _image_with(tiny_pipe, source)
    assert (original - plain).abs().max() > 1e-3, "the test LoRA must visibly change the image"
    for fmt in ("kohya", "diffusers"):
        exported = registry.export("local", record.slug, fmt, tmp_path / f"out-{fmt}.safetensors")
        info = validate_lora_file(exported, base_shapes=None)
        assert info.grammar == fmt
        assert torch.allclose(_image_with(tiny_pipe, exported), original, atol=1e-5), fmt
    stored = _image_with(tiny_pipe, record.lora_path)
    assert torch.allclose(stored, original, atol=1e-5)


def test_export_then_import_restores_the_same_tensors(tmp_path: Path, imported, base_shapes: dict) -> None:
    registry, _, record = imported
    stored = load_file(str(record.lora_path))
    for fmt in ("kohya", "diffusers"):
        exported = registry.export("local", record.slug, fmt, tmp_path / f"{fmt}.safetensors")
        again = registry.import_file("local", exported, base_shapes=base_shapes)
        assert again.slug != record.slug
        assert again.trigger == "sks woman"
        reloaded = load_file(str(again.lora_path))
        assert reloaded.keys() == stored.keys()
        assert all(torch.equal(reloaded[k], stored[k]) for k in stored)


def test_kohya_export_metadata(tmp_path: Path, imported) -> None:
    registry, _, record = imported
    exported = registry.export("local", record.slug, "kohya", tmp_path)
    assert exported == tmp_path / "anna.safetensors"
    meta = _metadata(exported)
    assert meta["modelspec.architecture"] == "stable-diffusion-v1/lora"
    assert meta["modelspec.title"] == "Anna"
    assert meta["modelspec.trigger_phrase"] == "sks woman"
    assert meta["modelspec.sai_model_spec"] == "1.0.0"
    assert meta["ss_network_module"] == "networks.lora" and meta["ss_network_dim"] == "4"
    assert not any("dataset" in key for key in meta)
    assert not any("/home/" in value or str(tmp_path) in value for value in meta.values())
    tensors = load_file(str(exported))
    alphas = [v for k, v in tensors.items() if k.endswith(".alpha")]
    assert alphas and all(float(a) == 4.0 for a in alphas)  # alpha = rank: scale already folded in
    assert any(k.startswith("lora_te_text_model_encoder_layers_0_self_attn_q_proj") for k in tensors)


def test_trained_lora_exports_with_base_model(tmp_path: Path, base_shapes: dict) -> None:
    from tests.registry.lora_test_files import write_diffusers

    trained = write_diffusers(tmp_path / "t.safetensors", lora_tensors(base_shapes, text_encoder=False), style="old")
    registry = LoraRegistry(tmp_path / "registry")
    record = registry.add_trained(
        "local", "Me", trained, trigger="ohwx", class_word="man", base_model="sd15/repo", base_revision="r1",
        rank=4, steps=10, similarity=None, extra={"random_weights": True},
    )
    meta = _metadata(registry.export("local", record.slug, "diffusers", tmp_path / "me.safetensors"))
    assert meta["modelspec.base_model"] == "sd15/repo@r1"
    assert "random-weight" in meta["modelspec.description"]


def test_export_refuses_bad_format_and_suffix(tmp_path: Path, imported) -> None:
    registry, _, record = imported
    with pytest.raises(InputError, match="Unknown export format"):
        registry.export("local", record.slug, "ckpt", tmp_path / "x.safetensors")
    with pytest.raises(InputError, match="must end in .safetensors"):
        registry.export("local", record.slug, "kohya", tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
