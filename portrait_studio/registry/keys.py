"""Tensor-key grammar of SD1.5 LoRA files: diffusers/peft names and kohya (A1111, ComfyUI) names.

Every accepted key maps to one :class:`LoraKey`: which component it patches (``unet`` or
``text_encoder``), the dotted module path in diffusers naming, and which part of the low-rank pair
it holds (``down`` = A, ``up`` = B, or the kohya ``alpha`` scalar). Anything else is refused by the
validator with the offending key in the message.

Text-encoder module paths are kept in the ecosystem's spelling with the ``text_model.`` prefix,
even though recent transformers releases flattened CLIPTextModel (diffusers strips it on load).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UNET = "unet"
TEXT_ENCODER = "text_encoder"
COMPONENTS = (UNET, TEXT_ENCODER)
KOHYA = "kohya"
DIFFUSERS = "diffusers"

# Words of diffusers / CLIP module names that contain an underscore. Kohya flattens dotted paths by
# turning every "." into "_", so these words are what lets us put the dots back.
_COMPOUND_WORDS = (
    "conv_in", "conv_out", "conv_shortcut", "conv_norm_out", "down_blocks", "up_blocks", "mid_block",
    "transformer_blocks", "time_embedding", "time_emb_proj", "linear_1", "linear_2", "proj_in", "proj_out",
    "to_q", "to_k", "to_v", "to_out", "add_embedding", "class_embedding",
    "text_model", "self_attn", "q_proj", "k_proj", "v_proj", "out_proj", "final_layer_norm",
    "layer_norm1", "layer_norm2", "token_embedding", "position_embedding", "text_projection",
)
_COMPOUNDS_BY_LENGTH = sorted((tuple(word.split("_")) for word in _COMPOUND_WORDS), key=len, reverse=True)

_SEGMENT = r"[A-Za-z0-9_]+"
_MODULE = rf"{_SEGMENT}(?:\.{_SEGMENT})*?"
_KOHYA_RE = re.compile(r"^lora_(unet|te)_([a-z0-9_]+)\.(lora_down\.weight|lora_up\.weight|alpha)$")
_DIFFUSERS_RE = re.compile(
    rf"^(?:(unet|text_encoder)\.)?({_MODULE})\.(lora_A\.weight|lora_B\.weight|lora\.down\.weight|lora\.up\.weight|alpha)$"
)
# Older diffusers attention-processor files: ``...attn1.processor.to_q_lora.down.weight``.
_PROCESSOR_RE = re.compile(
    rf"^(?:(unet)\.)?({_MODULE})\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$"
)
# Older diffusers text-encoder files: ``...self_attn.q_proj.lora_linear_layer.down.weight``.
_LINEAR_LAYER_RE = re.compile(rf"^(?:(text_encoder)\.)?({_MODULE})\.lora_linear_layer\.(down|up)\.weight$")

_PART_BY_SUFFIX = {
    "lora_A.weight": "down", "lora.down.weight": "down", "lora_down.weight": "down", "down": "down",
    "lora_B.weight": "up", "lora.up.weight": "up", "lora_up.weight": "up", "up": "up",
    "alpha": "alpha",
}
_UNET_ROOTS = ("down_blocks", "up_blocks", "mid_block", "conv_in", "conv_out", "time_embedding")
_TEXT_ROOTS = ("encoder", "embeddings", "final_layer_norm")


@dataclass(frozen=True)
class LoraKey:
    """One tensor key, understood. ``module`` is dotted for diffusers keys, flat for kohya keys."""

    grammar: str  # KOHYA or DIFFUSERS
    component: str  # UNET or TEXT_ENCODER
    module: str
    part: str  # "down", "up" or "alpha"


class KeyGrammarError(ValueError):
    """A tensor key that belongs to no LoRA grammar we accept; ``str()`` says why."""


def parse_key(key: str) -> LoraKey:
    """Understand one tensor key or raise :class:`KeyGrammarError` with the reason."""
    if key.startswith(("lora_te1_", "lora_te2_")):
        raise KeyGrammarError(f"key '{key}' is from an SDXL LoRA (two text encoders); only SD1.5 LoRAs fit")
    match = _KOHYA_RE.match(key)
    if match:
        component = UNET if match.group(1) == "unet" else TEXT_ENCODER
        return LoraKey(KOHYA, component, match.group(2), _PART_BY_SUFFIX[match.group(3)])
    match = _PROCESSOR_RE.match(key)
    if match:
        projection = "to_out.0" if match.group(3) == "to_out" else match.group(3)
        return LoraKey(DIFFUSERS, UNET, f"{match.group(2)}.{projection}", _PART_BY_SUFFIX[match.group(4)])
    match = _LINEAR_LAYER_RE.match(key)
    if match:
        module = canonical_module(TEXT_ENCODER, match.group(2))
        return LoraKey(DIFFUSERS, TEXT_ENCODER, module, _PART_BY_SUFFIX[match.group(3)])
    match = _DIFFUSERS_RE.match(key)
    if match:
        module = match.group(2)
        component = match.group(1) or _guess_component(module)
        if component is None:
            raise KeyGrammarError(f"key '{key}' names no component (expected a 'unet.' or 'text_encoder.' prefix)")
        if any(segment.startswith(("lora", "dora")) for segment in module.split(".")):
            raise KeyGrammarError(f"key '{key}' has an unsupported LoRA layout (nested lora/dora names)")
        return LoraKey(DIFFUSERS, component, canonical_module(component, module), _PART_BY_SUFFIX[match.group(3)])
    raise KeyGrammarError(f"key '{key}' is not a LoRA tensor name we know ({grammar_hint()})")


def grammar_hint() -> str:
    return (
        "expected diffusers/peft names like 'unet.<module>.lora_A.weight' / '.lora_B.weight' or "
        "'.lora.down.weight' / '.lora.up.weight', or kohya names like "
        "'lora_unet_<module>.lora_down.weight' / '.lora_up.weight' / '.alpha'"
    )


def _guess_component(module: str) -> str | None:
    root = module.split(".", 1)[0]
    if root in _UNET_ROOTS:
        return UNET
    if root in _TEXT_ROOTS or root == "text_model":
        return TEXT_ENCODER
    return None


def canonical_module(component: str, module: str) -> str:
    """Text-encoder paths always carry ``text_model.`` (files in the wild use both spellings)."""
    if component == TEXT_ENCODER and module.split(".", 1)[0] in _TEXT_ROOTS:
        return f"text_model.{module}"
    return module


def flatten_module(module: str) -> str:
    """Kohya's spelling of a dotted module path."""
    return module.replace(".", "_")


def unflatten_module(flat: str) -> str:
    """Best reading of a kohya module name as a dotted diffusers path, from known compound words.

    Exact when the base model's module names are at hand (see :func:`kohya_name_map`); this is the
    fallback used without them.
    """
    tokens = flat.split("_")
    segments: list[str] = []
    i = 0
    while i < len(tokens):
        for compound in _COMPOUNDS_BY_LENGTH:
            if tuple(tokens[i:i + len(compound)]) == compound:
                segments.append("_".join(compound))
                i += len(compound)
                break
        else:
            segments.append(tokens[i])
            i += 1
    return ".".join(segments)


def kohya_name_map(module_names: list[str] | set[str]) -> dict[str, str]:
    """Flat kohya name -> dotted name, for the modules a base model really has."""
    return {flatten_module(name): name for name in module_names}


def kohya_prefix(component: str) -> str:
    return "lora_unet_" if component == UNET else "lora_te_"


# ---- original-SD ("SGM"/LDM) UNet names in kohya files -------------------------------------------------
_SGM_ROOTS = ("input_blocks_", "middle_block_", "output_blocks_")
_SGM_BLOCK_NAMES = (
    ("input_blocks_", "down_blocks_"), ("middle_block_", "mid_block_"), ("output_blocks_", "up_blocks_"),
)
# Layer names inside an LDM ResBlock / Downsample and their diffusers spelling.
_LDM_INNER = (
    ("_in_layers_2", "_conv1"), ("_out_layers_3", "_conv2"), ("_emb_layers_1", "_time_emb_proj"),
    ("_skip_connection", "_conv_shortcut"), ("_downsamplers_0_op", "_downsamplers_0_conv"),
)


def is_sgm_name(flat: str) -> bool:
    return flat.startswith(_SGM_ROOTS)


def sgm_to_diffusers(flats: list[str], layers_per_block: int = 2) -> dict[str, str]:
    """Kohya UNet names in the original SD layout (``input_blocks_4_1_proj_in``) -> diffusers flat names
    (``down_blocks_1_attentions_0_proj_in``).

    The block arithmetic is diffusers' own (``_maybe_map_sgm_blocks_to_diffusers``, what
    ``load_lora_weights`` runs on such files); the layer names inside a ResBlock follow the same table as
    diffusers' ``_convert_unet_lora_key``. Raises ``ValueError`` for a name it cannot place.
    """
    from types import SimpleNamespace

    from diffusers.loaders.lora_conversion_utils import _maybe_map_sgm_blocks_to_diffusers

    keyed = {f"lora_unet_{flat}": flat for flat in flats}
    mapped = _maybe_map_sgm_blocks_to_diffusers(dict(keyed), SimpleNamespace(layers_per_block=layers_per_block))
    result = {}
    for new_key, flat in mapped.items():
        name = new_key[len("lora_unet_"):]
        if name.startswith("input_blocks_0_0"):
            name = "conv_in" + name[len("input_blocks_0_0"):]
        for sgm_root, diffusers_root in _SGM_BLOCK_NAMES:
            if name.startswith(sgm_root):
                name = diffusers_root + name[len(sgm_root):]
        for ldm, diffusers_name in _LDM_INNER:
            name = name.replace(ldm, diffusers_name)
        result[flat] = name
    return result
