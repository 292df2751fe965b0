"""Device, dtype and memory-budget decisions in one place (ComfyUI keeps them in one module too)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from portrait_studio.config import Settings

GIB = 1 << 30


def pick_device(preference: str = "auto") -> torch.device:
    """cuda > mps > cpu unless the settings ask for one explicitly."""
    if preference != "auto":
        return torch.device(preference)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device, preference: str = "auto") -> torch.dtype:
    """fp16 on accelerators (bf16 where the card prefers it), fp32 on the CPU."""
    if preference != "auto":
        return getattr(torch, preference)
    if device.type == "cuda":
        return torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def cuda_budget(
    working_reserve: int,
    mem_get_info: Callable[[], tuple[int, int]] | None = None,
    allocated: Callable[[], int] | None = None,
) -> int:
    """VRAM the cache may hold: free + what torch already holds for us - a working reserve.

    Callables are injectable so the arithmetic is tested with fake sizes on a CPU.
    """
    free, _total = (mem_get_info or torch.cuda.mem_get_info)()
    held = (allocated or torch.cuda.memory_allocated)()
    return max(0, free + held - working_reserve)


def device_budget_for(settings: Settings, device: torch.device) -> int | Callable[[], int]:
    reserve = int(settings.working_reserve_gb * GIB)
    if device.type == "cuda":
        return lambda: cuda_budget(reserve)
    return int(settings.cache_gb * GIB)
