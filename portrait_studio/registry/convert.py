"""Convert validated LoRA files between the registry's canonical form and the export formats.

Canonical form (what the registry stores and ``apply.py`` loads): diffusers/peft names
``unet.<module>.lora_A.weight`` / ``.lora_B.weight`` (``text_encoder.text_model.<module>...`` for the
text encoder), with each module's ``alpha / rank`` folded into ``lora_B`` so the file needs no alpha
and loads with scale 1 everywhere. Exports:

- ``kohya`` (A1111, ComfyUI, kohya sd-scripts): ``lora_unet_<flat>.lora_down.weight`` /
  ``.lora_up.weight`` / ``.alpha`` (alpha = rank, i.e. scale 1) and ``modelspec.*`` metadata.
- ``diffusers``: the canonical tensors, loadable with ``pipe.load_lora_weights(file)``.

No metadata of an imported file is carried over (it can hold the uploader's dataset paths).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from portrait_studio.errors import InputError
from portrait_studio.registry.keys import flatten_module, kohya_prefix
from portrait_studio.registry.validate import LoraFileInfo

EXPORT_FORMATS = ("kohya", "diffusers")
MODELSPEC_ARCHITECTURE = "stable-diffusion-v1/lora"
_METADATA_VALUE_CHARS = 300


@dataclass(frozen=True)
class ExportDescription:
    """What the exported file says about itself (all plain strings, no paths)."""

    title: str
    trigger: str = ""
    base_model: str = ""
    created: str = ""
    random_weights: bool = False


def canonical_state_dict(info: LoraFileInfo) -> dict[str, Any]:
    """Tensors of a validated file in canonical form (alpha folded into ``lora_B``)."""
    from safetensors import safe_open

    tensors: dict[str, Any] = {}
    with safe_open(str(info.path), framework="pt", device="cpu") as handle:
        for module in info.modules:
            down = handle.get_tensor(module.down_key)
            up = handle.get_tensor(module.up_key)
            if module.scale != 1.0:
                up = (up.float() * module.scale).to(up.dtype)
            base = f"{module.component}.{module.module}"
            tensors[f"{base}.lora_A.weight"] = down.contiguous()
            tensors[f"{base}.lora_B.weight"] = up.contiguous()
    return tensors


def kohya_state_dict(canonical: dict[str, Any]) -> dict[str, Any]:
    """Canonical tensors renamed to kohya's grammar, with alpha = rank (scale 1, as folded)."""
    import torch

    result: dict[str, Any] = {}
    for key, tensor in canonical.items():
        if not key.endswith(".lora_A.weight"):
            continue
        target = key[: -len(".lora_A.weight")]
        component, module = target.split(".", 1)
        name = kohya_prefix(component) + flatten_module(module)
        up = canonical[f"{target}.lora_B.weight"]
        result[f"{name}.lora_down.weight"] = tensor
        result[f"{name}.lora_up.weight"] = up
        result[f"{name}.alpha"] = torch.tensor(float(tensor.shape[0]), dtype=tensor.dtype)
    return result


def export_metadata(fmt: str, description: ExportDescription, canonical: dict[str, Any]) -> dict[str, str]:
    ranks = sorted({t.shape[0] for k, t in canonical.items() if k.endswith(".lora_A.weight")})
    created = description.created or datetime.now(timezone.utc).isoformat(timespec="seconds")
    metadata = {
        "format": "pt",
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": MODELSPEC_ARCHITECTURE,
        "modelspec.implementation": "diffusers",
        "modelspec.title": _clean(description.title),
        "modelspec.date": _clean(created),
        "modelspec.resolution": "512x512",
        "modelspec.prediction_type": "epsilon",
        "modelspec.category": "Person",
    }
    if description.trigger:
        metadata["modelspec.trigger_phrase"] = _clean(description.trigger)
        metadata["modelspec.usage_hint"] = f"Trigger word: {_clean(description.trigger)}"
    if description.base_model:
        metadata["modelspec.base_model"] = _clean(description.base_model)
    if description.random_weights:
        metadata["modelspec.description"] = "Trained on a random-weight test model: its effect is noise."
    if fmt == "kohya":
        metadata.update({
            "ss_network_module": "networks.lora",
            "ss_network_dim": str(ranks[-1]) if ranks else "0",
            "ss_network_alpha": str(ranks[-1]) if ranks else "0",
            "ss_base_model_version": "sd_v1",
            "ss_v2": "False",
            "ss_output_name": _clean(description.title),
            "ss_network_args": "{}",
            "ss_sd_model_name": _clean(description.base_model),
            "ss_training_comment": "exported by Portrait Studio",
        })
        if description.trigger:
            # kohya's own record of the captions' words; A1111 shows its tags as the LoRA's activation text.
            metadata["ss_tag_frequency"] = json.dumps({"likeness": {_clean(description.trigger): 1}})
    return metadata


def write_safetensors_atomic(tensors: dict[str, Any], metadata: dict[str, str], out_path: Path) -> Path:
    """Write next to ``out_path`` under a temporary name, then ``os.replace`` into place."""
    from safetensors.torch import save_file

    out_path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    os.close(handle)
    try:
        save_file(tensors, temp_name, metadata=metadata)
        with open(temp_name, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temp_name, out_path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return out_path


def export_tensors(fmt: str, canonical: dict[str, Any]) -> dict[str, Any]:
    if fmt == "kohya":
        return kohya_state_dict(canonical)
    if fmt == "diffusers":
        return dict(canonical)
    raise InputError(f"Unknown LoRA export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}.")


def _clean(value: str) -> str:
    """Metadata strings: printable, one line, short."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(value)).strip()
    return text[:_METADATA_VALUE_CHARS]
