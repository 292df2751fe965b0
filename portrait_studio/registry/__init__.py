"""LoRA registry: per-owner likeness folders, safetensors validation, import/export, apply-and-unload.

Public API (used by training, Stylize and the UI)::

    registry = LoraRegistry(settings.registry_dir)
    record = registry.add_trained(owner, name, lora_file, trigger=..., class_word=..., base_model=..., ...)
    record = registry.import_file(owner, path, name=None, base_shapes=None)
    registry.list(owner); registry.get(owner, slug_or_name); registry.rename(...); registry.delete(...)
    registry.export(owner, slug, "kohya" | "diffusers", out_path)
    validate_lora_file(path, base_shapes=None, max_bytes=...) -> LoraFileInfo
    base_module_shapes(unet, text_encoder=None) -> {"unet.<module>": (out, in), ...}
    with loras_applied(pipe, [(record.lora_path, 0.8)]): ...
"""

from portrait_studio.registry.apply import loras_applied
from portrait_studio.registry.convert import EXPORT_FORMATS
from portrait_studio.registry.records import LoraRecord
from portrait_studio.registry.shapes import BaseShapes, base_module_shapes, base_shapes_from_model_dir
from portrait_studio.registry.storage import DEFAULT_OWNER, owner_key, slugify
from portrait_studio.registry.store import LoraRegistry
from portrait_studio.registry.validate import DEFAULT_MAX_LORA_BYTES, LoraFileInfo, ModuleLora, validate_lora_file

__all__ = [
    "DEFAULT_MAX_LORA_BYTES",
    "DEFAULT_OWNER",
    "EXPORT_FORMATS",
    "BaseShapes",
    "LoraFileInfo",
    "LoraRecord",
    "LoraRegistry",
    "ModuleLora",
    "base_module_shapes",
    "base_shapes_from_model_dir",
    "loras_applied",
    "owner_key",
    "slugify",
    "validate_lora_file",
]
