"""GPU scheduling for event handlers: one shared queue slot, and ZeroGPU on Hugging Face Spaces.

Every handler that runs a model uses ``GPU_QUEUE`` as its ``concurrency_id`` with limit 1, so at most one
job holds the GPU. On a ZeroGPU Space, ``on_gpu(seconds)`` wraps the handler with ``spaces.GPU`` so a
GPU is attached for that call; elsewhere it returns the function unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

GPU_QUEUE = {"concurrency_id": "gpu", "concurrency_limit": 1}


def zero_gpu() -> bool:
    return bool(os.environ.get("SPACES_ZERO_GPU"))


def on_gpu(seconds: int) -> Callable[[F], F]:
    def wrap(fn: F) -> F:
        if not zero_gpu():
            return fn
        import spaces

        return spaces.GPU(duration=seconds)(fn)

    return wrap
