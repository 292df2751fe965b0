"""Apply LoRAs to a diffusers pipeline for the length of one job, then always take them off.

Why a context manager: a pipeline whose UNet still carries peft LoRA layers cannot be shared
(measured: ``AnimateDiffPipeline.from_pipe`` fails on an SD UNet with an unfused peft LoRA), and
cached components are shared between jobs. So LoRAs are loaded, weighted, used and unloaded inside
one ``with`` block, and the UNet and text encoder come out bit-identical to how they went in, also
when the job raised.

``fuse=True`` merges the LoRAs into the base weights (faster sampling on a GPU). Unfusing subtracts
in floating point, which is not exact, so the touched base weights are copied first (to the CPU)
and copied back after unloading.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from portrait_studio.errors import InputError
from portrait_studio.registry.validate import validate_lora_file

_DEFAULT_COMPONENTS = ("unet", "text_encoder")


@contextlib.contextmanager
def loras_applied(
    pipe: Any, loras: Sequence[tuple[Path, float]], *, fuse: bool = False, validate: bool = True
) -> Iterator[list[str]]:
    """Load each ``(file, weight)`` as its own adapter, activate them all, yield the adapter names.

    ``validate=False`` skips the file checks for files that came out of the registry moments ago.
    """
    if not loras:
        yield []
        return
    _require_clean(pipe)
    weights = [_checked_weight(path, weight) for path, weight in loras]
    names: list[str] = []
    backups: list[tuple[Any, Any]] = []
    fused = False
    try:
        for index, (path, _) in enumerate(loras):
            path = Path(path)
            if validate:
                validate_lora_file(path)
            name = f"ps{index}_{uuid.uuid4().hex[:8]}"
            names.append(name)
            pipe.load_lora_weights(str(path), adapter_name=name)
        pipe.set_adapters(names, adapter_weights=weights)
        if fuse:
            backups = _backup_lora_base_weights(pipe)
            pipe.fuse_lora(adapter_names=names)
            fused = True
        yield names
    finally:
        try:
            if fused:
                pipe.unfuse_lora()
        finally:
            pipe.unload_lora_weights()
            for parameter, saved in backups:
                parameter.data.copy_(saved)


def _require_clean(pipe: Any) -> None:
    loaded = pipe.get_list_adapters() if hasattr(pipe, "get_list_adapters") else {}
    if any(loaded.values()):
        # A pipeline with resident adapters would lose them at unload: that is a caller bug.
        raise RuntimeError(f"loras_applied needs a pipeline without LoRAs loaded; it has {loaded}.")


def _checked_weight(path: Path, weight: float) -> float:
    try:
        value = float(weight)
    except (TypeError, ValueError):
        raise InputError(f"LoRA weight for '{Path(path).name}' must be a number, got {weight!r}.") from None
    if not math.isfinite(value):
        raise InputError(f"LoRA weight for '{Path(path).name}' must be finite, got {weight!r}.")
    return value


def _backup_lora_base_weights(pipe: Any) -> list[tuple[Any, Any]]:
    """CPU copies of every base weight a LoRA is attached to (what fusing will change)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    backups = []
    for component_name in getattr(pipe, "_lora_loadable_modules", _DEFAULT_COMPONENTS):
        component = getattr(pipe, component_name, None)
        if component is None or not hasattr(component, "modules"):
            continue
        for module in component.modules():
            if isinstance(module, BaseTunerLayer):
                base = module.get_base_layer()
                for parameter in (getattr(base, "weight", None), getattr(base, "bias", None)):
                    if parameter is not None:
                        backups.append((parameter, parameter.detach().to("cpu", copy=True)))
    return backups
