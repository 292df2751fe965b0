"""Shared components go back in the dtype and on the device they came in, whatever a pipeline did.

diffusers pipelines change shared modules in place: AnimateDiff video-to-video upcasts a VAE whose config
has ``force_upcast`` (SD1.5's does) to fp32 while it encodes and casts it back afterwards, but not when an
exception (a cancel, an out-of-memory) lands in between. The next request then gets an fp32 VAE beside
fp16 weights and fails with a Half/Float mismatch. :func:`placement_kept` records every parameter's and
buffer's dtype and device when a request takes the modules, and puts back what changed when it ends.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

log = logging.getLogger(__name__)

Placement = dict[str, tuple[torch.dtype, torch.device]]


def placement_of(module: torch.nn.Module) -> Placement:
    """dtype and device of each parameter and buffer, by name."""
    tensors = list(module.named_parameters()) + list(module.named_buffers())
    return {name: (tensor.dtype, tensor.device) for name, tensor in tensors}


def restore_placement(module: torch.nn.Module, placement: Placement) -> list[str]:
    """Cast/move the tensors of ``module`` whose dtype or device differs from ``placement``; their names."""
    changed = []
    for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
        wanted = placement.get(name)
        if wanted is None or (tensor.dtype, tensor.device) == wanted:
            continue  # a tensor the request added (its own owner removes it) or one left as it was
        tensor.data = tensor.data.to(device=wanted[1], dtype=wanted[0])
        changed.append(name)
    return changed


def cast_frozen(module: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast the frozen floating-point tensors of ``module`` to ``dtype``; trainable ones keep theirs."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.is_floating_point() and not tensor.requires_grad and tensor.dtype != dtype:
            tensor.data = tensor.data.to(dtype)


@contextmanager
def placement_kept(modules: Iterable[Any]) -> Iterator[None]:
    """Restore the dtype and device of every torch module in ``modules`` when the block ends, also on error."""
    flat = [m for item in modules for m in (item if isinstance(item, (list, tuple)) else [item])]  # ControlNet lists
    saved = [(module, placement_of(module)) for module in flat if isinstance(module, torch.nn.Module)]
    try:
        yield
    finally:
        for module, placement in saved:
            changed = restore_placement(module, placement)
            if changed:
                log.info("restored dtype/device of %d tensors of %s", len(changed), type(module).__name__)
