"""Device, dtype and memory-budget decisions in one place (ComfyUI keeps them in one module too)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from portrait_studio.config import Settings
from portrait_studio.models.memory import DeviceMemory, cache_device_budget, read_cuda_memory

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
    cache_bytes: int,
    read_memory: Callable[[], DeviceMemory] = read_cuda_memory,
) -> int:
    """VRAM the cache may hold (see :mod:`portrait_studio.models.memory`); ``read_memory`` is injectable
    so the arithmetic is tested with fake figures on a CPU."""
    return cache_device_budget(read_memory(), cache_bytes, working_reserve)


def device_budget_for(settings: Settings, device: torch.device) -> int | Callable[[int], int]:
    """A fixed byte budget on CPU/MPS; on CUDA a function of the cache's resident bytes, read live."""
    reserve = int(settings.working_reserve_gb * GIB)
    if device.type == "cuda":
        return lambda cache_bytes: cuda_budget(reserve, cache_bytes, lambda: read_cuda_memory(device))
    return int(settings.cache_gb * GIB)


def native_bf16(capability_major: int | None, rocm: bool = False) -> bool:
    """bf16 is fast only where the hardware has it: compute capability 8.0+ (Ampere and newer) or ROCm.

    ``torch.cuda.is_bf16_supported()`` also says yes where bf16 is *emulated* (RTX 20xx, several times
    slower than fp16); this is its ``including_emulation=False`` rule as a function of the figures.
    """
    if rocm:
        return True
    return capability_major is not None and capability_major >= 8


def cuda_has_native_bf16() -> bool:
    """:func:`native_bf16` for the current CUDA device (False without one)."""
    if not torch.cuda.is_available():
        return False
    major = torch.cuda.get_device_properties(torch.cuda.current_device()).major
    return native_bf16(major, rocm=bool(torch.version.hip))
