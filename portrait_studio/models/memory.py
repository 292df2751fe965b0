"""How much device memory the model cache may hold: a pure function of the device's figures.

PyTorch's caching allocator keeps the blocks a finished request freed *reserved* for this process, and
the driver's free figure (``torch.cuda.mem_get_info``) does not count them. Memory this process can use
for models is therefore the driver's free memory plus what the allocator holds but does not use
(reserved - allocated), minus a working reserve for activations. ComfyUI's ``get_free_memory`` computes
the same sum. The cache may hold what it holds now plus that usable amount.

Everything here takes plain byte counts, so the policy is tested with the figures of 12 and 24 GB cards
on a CPU; :func:`read_cuda_memory` is the only place that asks the driver.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DeviceMemory:
    """One reading of a device's memory, in bytes (see :func:`read_cuda_memory`)."""

    total: int
    driver_free: int  # mem_get_info()[0]: free for any process, excludes this process's reserved pool
    reserved: int  # held by this process's caching allocator (allocated + cached free blocks)
    allocated: int  # in live tensors of this process (the cache's models among them)


def usable_bytes(memory: DeviceMemory, working_reserve: int) -> int:
    """Bytes this process can still place on the device and leave ``working_reserve`` free for activations."""
    pooled = max(0, memory.reserved - memory.allocated)  # freed by us, kept by the allocator, usable by us
    return max(0, memory.driver_free + pooled - working_reserve)


def cache_device_budget(memory: DeviceMemory, cache_bytes: int, working_reserve: int) -> int:
    """Bytes the cache may keep on the device: what it holds now plus what is still usable.

    ``cache_bytes`` are part of ``allocated`` (they stay the cache's whether or not more is usable), so
    models already resident never count against themselves. Capped at the card minus the reserve.
    """
    budget = cache_bytes + usable_bytes(memory, working_reserve)
    return max(0, min(budget, memory.total - working_reserve))


def read_cuda_memory(device: torch.device | None = None) -> DeviceMemory:
    """The current CUDA figures (only called on a CUDA device)."""
    free, total = torch.cuda.mem_get_info(device)
    return DeviceMemory(
        total=int(total),
        driver_free=int(free),
        reserved=int(torch.cuda.memory_reserved(device)),
        allocated=int(torch.cuda.memory_allocated(device)),
    )


def release_cached_blocks(device: torch.device) -> None:
    """Give the allocator's unused blocks back to the driver (after an eviction), so another process
    (a training worker) can use them too."""
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
