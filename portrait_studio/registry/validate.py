"""Validate a user's LoRA file before any model sees it.

Order matters: cheap structural checks on our own parse of the header first (size, container,
dtypes, key grammar, pairs, ranks, base-model fit), and only then the safetensors library reads
tensor data, one tensor at a time, to check that every value is finite. Never ``torch.load``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from portrait_studio.errors import InputError
from portrait_studio.registry.keys import (
    COMPONENTS,
    DIFFUSERS,
    UNET,
    KeyGrammarError,
    LoraKey,
    is_sgm_name,
    kohya_name_map,
    parse_key,
    sgm_to_diffusers,
    unflatten_module,
)
from portrait_studio.registry.safetensors_header import SafetensorsHeader, TensorEntry, read_header, refuse
from portrait_studio.registry.shapes import BaseShapes

DEFAULT_MAX_LORA_BYTES = 1024 * 1024 * 1024
MAX_RANK = 4096
ADAPTER_METADATA_KEY = "lora_adapter_metadata"  # where diffusers stores the peft LoraConfig


@dataclass(frozen=True)
class ModuleLora:
    """One low-rank pair: ``delta W = scale * up @ down`` on module ``component.module``."""

    component: str
    module: str  # dotted diffusers path
    down_key: str
    up_key: str
    alpha_key: str | None
    rank: int
    in_features: int
    out_features: int
    conv: bool
    scale: float  # alpha / rank (or 1 when the file carries no alpha)

    @property
    def target(self) -> str:
        return f"{self.component}.{self.module}"


@dataclass(frozen=True)
class LoraFileInfo:
    path: Path
    grammar: str  # KOHYA or DIFFUSERS
    size_bytes: int
    sha256: str
    modules: tuple[ModuleLora, ...]
    dtypes: tuple[str, ...]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def rank(self) -> int:
        return max(m.rank for m in self.modules)

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(c for c in COMPONENTS if any(m.component == c for m in self.modules))


def validate_lora_file(
    path: Path, base_shapes: BaseShapes | None = None, max_bytes: int = DEFAULT_MAX_LORA_BYTES
) -> LoraFileInfo:
    """Check ``path`` completely; return what it contains or raise InputError naming file and problem."""
    path = Path(path)
    size = _check_file(path, max_bytes)
    header = read_header(path, size)
    _check_architecture(path, header.metadata)
    parsed = _parse_keys(path, header)
    grammar = _single_grammar(path, parsed)
    adapter_alphas = _adapter_alphas(path, header.metadata) if grammar == DIFFUSERS else {}
    groups = _group_pairs(path, parsed)
    names = _module_names(path, groups, grammar, base_shapes)
    modules = []
    for (component, raw_module), parts in groups.items():
        modules.append(_check_pair(path, header, component, names[(component, raw_module)], parts))
    alphas = _read_and_check_values(path, header)
    modules = [_with_scale(path, m, alphas, adapter_alphas) for m in modules]
    if base_shapes is not None:
        _check_fits_base(path, modules, base_shapes)
    return LoraFileInfo(
        path=path,
        grammar=grammar,
        size_bytes=size,
        sha256=sha256_of(path),
        modules=tuple(sorted(modules, key=lambda m: (m.component, m.module))),
        dtypes=tuple(sorted({e.dtype for e in header.tensors.values()})),
        metadata=dict(header.metadata),
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_file(path: Path, max_bytes: int) -> int:
    if not path.is_file():
        raise refuse(path, "it does not exist or is not a regular file")
    if path.suffix.lower() != ".safetensors":
        raise refuse(
            path, f"only .safetensors files are accepted, not '{path.suffix or 'no extension'}'",
            "Pickled .ckpt/.pt/.bin files can run code and are never loaded.",
        )
    size = path.stat().st_size
    if size == 0:
        raise refuse(path, "the file is empty")
    if size > max_bytes:
        raise refuse(
            path, f"it is {size / 2**20:,.1f} MB, above the {max_bytes / 2**20:,.0f} MB limit for LoRA files"
        )
    return size


def _check_architecture(path: Path, metadata: dict[str, str]) -> None:
    """Files that say they are for another model family are refused by their own word."""
    architecture = metadata.get("modelspec.architecture", "")
    version = metadata.get("ss_base_model_version", "")
    if (architecture and not architecture.startswith("stable-diffusion-v1")) or version.startswith(("sdxl", "sd_v2")):
        said = architecture or version
        raise refuse(path, f"its metadata says it is for '{said}'; only Stable Diffusion 1.x LoRAs fit this app")


def _parse_keys(path: Path, header: SafetensorsHeader) -> dict[str, LoraKey]:
    parsed = {}
    for name in header.tensors:
        try:
            parsed[name] = parse_key(name)
        except KeyGrammarError as exc:
            raise refuse(path, str(exc)) from None
    return parsed


def _single_grammar(path: Path, parsed: dict[str, LoraKey]) -> str:
    grammars = {key.grammar for key in parsed.values()}
    if len(grammars) > 1:
        raise refuse(path, "it mixes kohya ('lora_unet_...') and diffusers ('unet....') tensor names")
    return grammars.pop()


def _group_pairs(path: Path, parsed: dict[str, LoraKey]) -> dict[tuple[str, str], dict[str, str]]:
    groups: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for name, key in parsed.items():
        parts = groups[(key.component, key.module)]
        if key.part in parts:
            raise refuse(path, f"module '{key.module}' has two '{key.part}' tensors ('{parts[key.part]}', '{name}')")
        parts[key.part] = name
    for parts in groups.values():
        for needed, other in (("down", "up"), ("up", "down")):
            if needed not in parts:
                present = parts.get(other) or parts["alpha"]
                raise refuse(path, f"tensor '{present}' has no matching {needed} tensor (missing LoRA pair)")
    return groups


def _module_names(
    path: Path, groups: dict[tuple[str, str], dict[str, str]], grammar: str, base_shapes: BaseShapes | None
) -> dict[tuple[str, str], str]:
    """Dotted module path for every group; kohya names are resolved against the base model when given."""
    if grammar == DIFFUSERS:
        return {group: group[1] for group in groups}
    by_component: dict[str, dict[str, str]] = {}
    if base_shapes is not None:
        for component in COMPONENTS:
            prefix = f"{component}."
            names = {t[len(prefix):] for t in base_shapes if t.startswith(prefix)}
            by_component[component] = kohya_name_map(names)
    renamed = _sgm_names(path, [flat for component, flat in groups if component == UNET], base_shapes)
    names = {}
    for component, original in groups:
        flat = renamed.get(original, original) if component == UNET else original
        if base_shapes is None:
            names[(component, original)] = unflatten_module(flat)
        elif flat in by_component[component]:
            names[(component, original)] = by_component[component][flat]
        else:
            raise refuse(
                path, f"it targets '{flat}', which the base model's {component} does not have",
                "Is it a LoRA for another model family (SDXL, SD2)?",
            )
    return names


def _sgm_names(path: Path, flats: list[str], base_shapes: BaseShapes | None) -> dict[str, str]:
    """Kohya files written from the original SD UNet (``lora_unet_input_blocks_…``): their diffusers names."""
    sgm = [flat for flat in flats if is_sgm_name(flat)]
    if not sgm:
        return {}
    if len(sgm) != len(flats):
        raise refuse(path, "it mixes original-SD ('input_blocks_…') and diffusers ('down_blocks_…') UNet names")
    layers = 2  # SD1.5; the base model says for itself when it is at hand
    if base_shapes is not None:
        resnets = {t.split(".")[4] for t in base_shapes if t.startswith("unet.down_blocks.0.resnets.")}
        layers = len(resnets) or layers
    try:
        return sgm_to_diffusers(sgm, layers)
    except (ValueError, IndexError) as exc:
        raise refuse(path, f"its original-SD UNet names could not be converted ({exc})") from None


def _check_pair(
    path: Path, header: SafetensorsHeader, component: str, module: str, parts: dict[str, str]
) -> ModuleLora:
    down, up = header.tensors[parts["down"]], header.tensors[parts["up"]]
    alpha = header.tensors.get(parts.get("alpha", ""))
    if len(down.shape) not in (2, 4) or len(up.shape) != len(down.shape):
        raise refuse(
            path, f"'{down.name}' {list(down.shape)} and '{up.name}' {list(up.shape)} are not a linear (2-D) "
            "or conv (4-D) LoRA pair"
        )
    rank = down.shape[0]
    if up.shape[1] != rank:
        raise refuse(
            path, f"rank mismatch: '{down.name}' has rank {rank} but '{up.name}' has rank {up.shape[1]}"
        )
    if not 1 <= rank <= MAX_RANK:
        raise refuse(path, f"'{down.name}' has rank {rank}; expected 1 to {MAX_RANK}")
    if len(up.shape) == 4 and tuple(up.shape[2:]) != (1, 1):
        raise refuse(path, f"conv LoRA up weight '{up.name}' must have a 1x1 kernel, not {list(up.shape[2:])}")
    # A low-rank pair never has more rank than its layer has inputs or outputs: no trainer writes one.
    fan_in = math.prod(down.shape[1:])
    if rank > min(fan_in, up.shape[0]):
        raise refuse(
            path, f"'{down.name}' has rank {rank}, more than its layer's {fan_in} inputs / {up.shape[0]} outputs: "
            "the file is malformed",
        )
    if alpha is not None and alpha.shape not in ((), (1,)):
        raise refuse(path, f"alpha tensor '{alpha.name}' must be a single number, not shape {list(alpha.shape)}")
    return ModuleLora(
        component=component, module=module, down_key=down.name, up_key=up.name,
        alpha_key=alpha.name if alpha else None, rank=rank, in_features=down.shape[1],
        out_features=up.shape[0], conv=len(down.shape) == 4, scale=1.0,
    )


def _read_and_check_values(path: Path, header: SafetensorsHeader) -> dict[str, float]:
    """Read tensors one by one through safetensors; every value must be finite. Returns alpha values."""
    import torch
    from safetensors import safe_open

    alphas: dict[str, float] = {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            for entry in sorted(header.tensors.values(), key=lambda e: e.begin):
                tensor = handle.get_tensor(entry.name)
                if not bool(torch.isfinite(tensor).all()):
                    bad = "NaN" if bool(torch.isnan(tensor).any()) else "infinite"
                    raise refuse(path, f"tensor '{entry.name}' contains {bad} values")
                if entry.name.endswith(".alpha"):
                    alphas[entry.name] = _positive_alpha(path, entry, float(tensor.reshape(-1)[0]))
    except InputError:
        raise
    except Exception as exc:  # safetensors' own refusal of something our parse accepted
        raise refuse(path, f"safetensors could not read it ({exc})") from None
    return alphas


def _positive_alpha(path: Path, entry: TensorEntry, value: float) -> float:
    if value <= 0:
        raise refuse(path, f"alpha tensor '{entry.name}' is {value}; it must be positive")
    return value


def _adapter_alphas(path: Path, metadata: dict[str, str]) -> dict[str, dict]:
    """Per-component ``lora_alpha`` / ``alpha_pattern`` / ``use_rslora`` from diffusers' saved LoraConfig."""
    raw = metadata.get(ADAPTER_METADATA_KEY)
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError:
        raise refuse(path, f"its '{ADAPTER_METADATA_KEY}' metadata is not valid JSON") from None
    if not isinstance(config, dict):
        raise refuse(path, f"its '{ADAPTER_METADATA_KEY}' metadata is not a JSON object")
    result: dict[str, dict] = {}
    for component in COMPONENTS:
        prefix = f"{component}."
        values = {k[len(prefix):]: v for k, v in config.items() if k.startswith(prefix)}
        if values.get("use_dora"):
            raise refuse(path, "it is a DoRA adapter, which this app does not support")
        if values:
            result[component] = values
    return result


def _with_scale(
    path: Path, module: ModuleLora, alphas: dict[str, float], adapter_alphas: dict[str, dict]
) -> ModuleLora:
    alpha: float | None = alphas.get(module.alpha_key) if module.alpha_key else None
    rslora = False
    config = adapter_alphas.get(module.component)
    if alpha is None and config:
        alpha = _pattern_value(config.get("alpha_pattern") or {}, module.module, config.get("lora_alpha"))
        rslora = bool(config.get("use_rslora"))
    if alpha is None:
        return module
    if not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha <= 0:
        raise refuse(path, f"module '{module.module}' has an invalid lora_alpha {alpha!r} in its metadata")
    denominator = math.sqrt(module.rank) if rslora else module.rank
    return ModuleLora(**{**module.__dict__, "scale": float(alpha) / denominator})


def _pattern_value(patterns: dict, module: str, default: object) -> object:
    """peft-style per-module override: a pattern matches a module path ending in it."""
    for pattern, value in patterns.items():
        try:
            if re.fullmatch(rf"(.*\.)?(?:{pattern})", module):
                return value
        except re.error:
            continue
    return default


def _check_fits_base(path: Path, modules: list[ModuleLora], base_shapes: BaseShapes) -> None:
    for module in modules:
        shape = base_shapes.get(module.target)
        if shape is None:
            raise refuse(
                path, f"it targets '{module.target}', which the base model does not have",
                "Is it a LoRA for another model family (SDXL, SD2)?",
            )
        out_features, in_features = shape
        if (module.out_features, module.in_features) != (out_features, in_features):
            raise refuse(
                path, f"module '{module.target}' is {in_features}->{out_features} in the base model but the LoRA "
                f"is {module.in_features}->{module.out_features}", "It was made for a different base model.",
            )
