"""validate_lora_file: valid files in every accepted grammar, and each kind of bad file refused with its reason."""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from portrait_studio.errors import InputError
from portrait_studio.registry import validate_lora_file
from tests.registry.lora_test_files import lora_tensors, rewrite_safetensors, write_diffusers, write_kohya


def test_valid_kohya_lora_is_understood(valid_kohya: Path, base_shapes: dict) -> None:
    info = validate_lora_file(valid_kohya, base_shapes=base_shapes)
    assert info.grammar == "kohya"
    assert info.rank == 4
    assert info.components == ("unet", "text_encoder")
    targets = {m.target for m in info.modules}
    assert "unet.up_blocks.1.attentions.2.transformer_blocks.0.attn1.to_out.0" in targets
    assert "text_encoder.text_model.encoder.layers.1.mlp.fc1" in targets
    assert all(m.scale == pytest.approx(2.0 / 4) for m in info.modules)  # alpha / rank
    conv = [m for m in info.modules if m.conv]
    assert [m.module for m in conv] == ["mid_block.attentions.0.proj_in"]
    assert len(info.sha256) == 64


def test_kohya_names_resolve_the_same_with_and_without_base_shapes(valid_kohya: Path, base_shapes: dict) -> None:
    with_base = validate_lora_file(valid_kohya, base_shapes=base_shapes)
    without = validate_lora_file(valid_kohya)
    assert [m.target for m in with_base.modules] == [m.target for m in without.modules]


@pytest.mark.parametrize("style", ["peft", "old"])
def test_diffusers_lora_variants_are_understood(tmp_path: Path, base_shapes: dict, style: str) -> None:
    path = write_diffusers(tmp_path / f"{style}.safetensors", lora_tensors(base_shapes, rank=3), style=style)
    info = validate_lora_file(path, base_shapes=base_shapes)
    assert info.grammar == "diffusers"
    assert info.rank == 3
    assert all(m.scale == 1.0 for m in info.modules)


def test_half_precision_and_bf16_are_accepted(tmp_path: Path, base_shapes: dict) -> None:
    for dtype, name in ((torch.float16, "F16"), (torch.bfloat16, "BF16")):
        path = write_kohya(tmp_path / f"{name}.safetensors", lora_tensors(base_shapes, dtype=dtype), alpha=4)
        assert validate_lora_file(path, base_shapes=base_shapes).dtypes == (name,)


def test_training_output_format_is_accepted(tmp_path: Path, tiny_sd_dir: Path, base_shapes: dict) -> None:
    """What training writes: peft adapter -> convert_state_dict_to_diffusers -> save_lora_weights."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(tiny_sd_dir / "unet")
    targets = ["to_q", "to_k", "to_v", "to_out.0"]
    config = LoraConfig(r=4, lora_alpha=2, init_lora_weights="gaussian", target_modules=targets)
    unet.add_adapter(config)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(tmp_path, unet_lora_layers=layers, safe_serialization=True)
    info = validate_lora_file(tmp_path / "pytorch_lora_weights.safetensors", base_shapes=base_shapes)
    assert info.grammar == "diffusers"
    assert len(info.modules) == len(layers) // 2
    assert {m.module.rsplit(".", 1)[-1] for m in info.modules} == {"to_q", "to_k", "to_v", "0"}
    assert all(m.scale == 1.0 for m in info.modules)  # no adapter metadata saved: diffusers loads with alpha = r

    # With the LoraConfig saved as metadata, lora_alpha / r is honoured.
    StableDiffusionPipeline.save_lora_weights(
        tmp_path / "meta", unet_lora_layers=layers, safe_serialization=True,
        unet_lora_adapter_metadata=config.to_dict(),
    )
    info = validate_lora_file(tmp_path / "meta" / "pytorch_lora_weights.safetensors")
    assert all(m.scale == pytest.approx(0.5) for m in info.modules)


# ---- refusals ----------------------------------------------------------------------------------

def _kohya(tmp_path: Path, base_shapes: dict, name: str = "src.safetensors", **kwargs) -> Path:
    return write_kohya(tmp_path / name, lora_tensors(base_shapes, **kwargs), alpha=4.0)


def _first_tensor(header: dict) -> str:
    return next(k for k in header if k != "__metadata__")


def _set_dtype(dtype: str, width: int):  # noqa: ANN202
    def mutate(header: dict) -> None:
        name = _first_tensor(header)
        entry = header[name]
        begin, end = entry["data_offsets"]
        # Same byte span, reinterpreted: only the dtype check can catch it.
        count = (end - begin) // width
        entry["dtype"], entry["shape"] = dtype, [count]
    return mutate


def _overlap(header: dict) -> None:
    """Point one alpha at another alpha's 4 bytes."""
    first, second = [k for k in header if k.endswith(".alpha")][:2]
    header[second]["data_offsets"] = list(header[first]["data_offsets"])


def _gap(header: dict) -> None:
    for name in header:
        if name != "__metadata__" and header[name]["data_offsets"][0] == 0:
            header[name]["data_offsets"][0] += 4
            header[name]["data_offsets"][1] += 4


def _rename_keys(old: str, new: str):  # noqa: ANN202
    def mutate(header: dict) -> None:
        for key in [k for k in header if old in k]:
            header[key.replace(old, new)] = header.pop(key)
    return mutate


def _drop_first_up(tensors: dict) -> None:
    del tensors[next(k for k in tensors if k.endswith("lora_up.weight"))]


def _bad_offsets_size(header: dict) -> None:
    name = next(k for k in header if k.endswith("lora_down.weight"))
    header[name]["shape"][0] += 1


def _nan(tensors: dict) -> None:
    next(v for k, v in tensors.items() if k.endswith("lora_up.weight"))[0, 0] = float("nan")


def _inf(tensors: dict) -> None:
    next(v for k, v in tensors.items() if k.endswith("lora_down.weight")).view(-1)[3] = float("inf")


def _rank_mismatch(tensors: dict) -> None:
    key = next(k for k in tensors if k.endswith("attn1_to_q.lora_up.weight"))
    tensors[key] = tensors[key][:, :3].contiguous()


def _base_shape_mismatch(tensors: dict) -> None:
    key = next(k for k in tensors if k.endswith("attn2_to_k.lora_down.weight"))
    tensors[key] = torch.randn(4, 7)  # the tiny UNet's cross-attention input is 16 wide


def _negative_alpha(tensors: dict) -> None:
    tensors[next(k for k in tensors if k.endswith(".alpha"))] = torch.tensor(-1.0)


def _unknown_module(tensors: dict) -> None:
    # (Original-SD names such as input_blocks_1_1 are converted now: see test_kohya_sgm.py.)
    tensors["lora_unet_down_blocks_7_attentions_0_proj_in.lora_down.weight"] = torch.zeros(4, 8)
    tensors["lora_unet_down_blocks_7_attentions_0_proj_in.lora_up.weight"] = torch.zeros(8, 4)


HEADER_CASES = {
    "wrong dtype I64": (dict(mutate_header=_set_dtype("I64", 8)), "dtype 'I64'"),
    "wrong dtype F64": (dict(mutate_header=_set_dtype("F64", 8)), "dtype 'F64'"),
    "unknown dtype": (dict(mutate_header=_set_dtype("Q4", 4)), "unknown dtype 'Q4'"),
    "trailing bytes": (dict(data_suffix=b"\0" * 16), "16 trailing bytes"),
    "truncated data": (dict(data_cut=10), "truncated"),
    "overlapping offsets": (dict(mutate_header=_overlap), "overlap"),
    "gap in buffer": (dict(mutate_header=_gap), "unused bytes"),
    "bad JSON": (dict(header_text=b'{"a": [1, 2'), "not valid JSON"),
    "header not an object": (dict(header_text=b"[1, 2, 3]"), "not a JSON object"),
    "header not UTF-8": (dict(header_text=b"{\xff\xfe}"), "not UTF-8"),
    "duplicate key": (dict(header_text=b'{"x": {}, "x": {}}'), "names tensor 'x' twice"),
    "size does not match shape": (dict(mutate_header=_bad_offsets_size), "spans"),
    "unknown key grammar": (
        dict(mutate_header=_rename_keys("lora_down.weight", "hada_w1_a")), "not a LoRA tensor name"
    ),
    "sdxl key grammar": (dict(mutate_header=_rename_keys("lora_te_", "lora_te1_")), "SDXL"),
    "metadata not strings": (dict(mutate_header=lambda h: h.update({"__metadata__": {"a": 1}})), "__metadata__"),
    "sdxl metadata": (
        dict(mutate_header=lambda h: h.update({"__metadata__": {"modelspec.architecture": "stable-diffusion-xl-v1"}})),
        "only Stable Diffusion 1.x",
    ),
    "no tensors": (dict(header_text=b'{"__metadata__": {}}'), "no tensors"),
}


@pytest.mark.parametrize("case", sorted(HEADER_CASES))
def test_tampered_header_or_buffer_is_refused(tmp_path: Path, base_shapes: dict, case: str) -> None:
    changes, reason = HEADER_CASES[case]
    source = _kohya(tmp_path, base_shapes)
    bad = rewrite_safetensors(source, tmp_path / "bad lora.safetensors", **changes)
    with pytest.raises(InputError) as err:
        validate_lora_file(bad, base_shapes=base_shapes)
    message = str(err.value)
    assert "'bad lora.safetensors'" in message, message
    assert reason in message, message
    assert "\n" not in message


TENSOR_CASES = {
    "NaN values": (_nan, "NaN"),
    "infinite values": (_inf, "infinite"),
    "rank mismatch down/up": (_rank_mismatch, "rank mismatch"),
    "shape incompatible with base": (_base_shape_mismatch, "in the base model"),
    "module not in base model": (_unknown_module, "does not have"),
    "negative alpha": (_negative_alpha, "must be positive"),
    "missing pair": (_drop_first_up, "missing LoRA pair"),
}


@pytest.mark.parametrize("case", sorted(TENSOR_CASES))
def test_bad_tensor_content_is_refused(tmp_path: Path, base_shapes: dict, case: str) -> None:
    from safetensors.torch import load_file

    mutate, reason = TENSOR_CASES[case]
    tensors = load_file(str(_kohya(tmp_path, base_shapes)))
    mutate(tensors)
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad))
    with pytest.raises(InputError, match=reason) as err:
        validate_lora_file(bad, base_shapes=base_shapes)
    assert "'bad.safetensors'" in str(err.value)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="'empty.safetensors' refused: the file is empty"):
        validate_lora_file(path)


def test_truncated_length_prefix_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "short.safetensors"
    path.write_bytes(b"\x10\x00\x00")
    with pytest.raises(InputError, match="truncated"):
        validate_lora_file(path)


def test_header_longer_than_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.safetensors"
    path.write_bytes(struct.pack("<Q", 5000) + b'{"a":')
    with pytest.raises(InputError, match="header claims 5,000 bytes but the file has only"):
        validate_lora_file(path)


def test_huge_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    with pytest.raises(InputError, match="more than the .* allowed"):
        validate_lora_file(path)


def test_size_cap(tmp_path: Path, valid_kohya: Path) -> None:
    with pytest.raises(InputError, match="above the .* MB limit"):
        validate_lora_file(valid_kohya, max_bytes=1000)


def test_pickle_disguised_as_safetensors_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"lora_unet_x.lora_down.weight": [1.0]}, protocol=4))
    with pytest.raises(InputError, match="Python pickle"):
        validate_lora_file(path)


def test_torch_zip_checkpoint_disguised_as_safetensors_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.safetensors"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    with pytest.raises(InputError, match="zip archive"):
        validate_lora_file(path)


def test_other_extensions_are_refused_without_reading(tmp_path: Path, valid_kohya: Path) -> None:
    path = tmp_path / "model.ckpt"
    path.write_bytes(valid_kohya.read_bytes())
    with pytest.raises(InputError, match="only .safetensors files are accepted, not '.ckpt'"):
        validate_lora_file(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        validate_lora_file(tmp_path / "nope.safetensors")


def test_mixed_grammars_are_refused(tmp_path: Path, base_shapes: dict) -> None:
    pairs = lora_tensors(base_shapes, text_encoder=False)
    kohya = write_kohya(tmp_path / "k.safetensors", pairs)
    diffusers = write_diffusers(tmp_path / "d.safetensors", lora_tensors(base_shapes, seed=1, text_encoder=False))
    from safetensors.torch import load_file

    mixed = {**load_file(str(kohya)), **dict(list(load_file(str(diffusers)).items())[:2])}
    save_file(mixed, str(tmp_path / "mixed.safetensors"))
    with pytest.raises(InputError, match="mixes kohya"):
        validate_lora_file(tmp_path / "mixed.safetensors")


def test_refusal_reasons_are_distinct() -> None:
    reasons = [reason for _, reason in HEADER_CASES.values()] + [reason for _, reason in TENSOR_CASES.values()]
    assert len(reasons) >= 12
    assert len(set(reasons)) >= 12


def test_metadata_is_read_but_kept_as_data(tmp_path: Path, base_shapes: dict) -> None:
    meta = {"modelspec.title": "Anna", "ss_dataset_dirs": json.dumps({"/home/bob/photos": {}})}
    path = write_kohya(tmp_path / "m.safetensors", lora_tensors(base_shapes), alpha=4, metadata=meta)
    assert validate_lora_file(path).metadata == meta
