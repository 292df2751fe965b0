"""How training failures are named for the user: out of memory and disk full, with what to do."""

from __future__ import annotations

import errno

from portrait_studio.errors import OutOfMemoryError, PortraitStudioError
from portrait_studio.likeness.config import TrainingConfig

_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class DiskFullError(PortraitStudioError):
    """The disk filled up while writing a checkpoint; earlier checkpoints are intact."""


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _DISK_FULL


def is_out_of_memory(exc: BaseException) -> bool:
    oom_type = getattr(torch_module(), "OutOfMemoryError", None)
    return (oom_type is not None and isinstance(exc, oom_type)) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def torch_module():  # imported lazily so this module stays cheap for the job manager
    import torch

    return torch


def out_of_memory_error(config: TrainingConfig, device: str) -> OutOfMemoryError:
    tips = []
    if config.resolution > 384:
        tips.append(f"resolution {config.resolution} -> {max(256, config.resolution - 128)}")
    if config.rank > 32:
        tips.append(f"rank {config.rank} -> {config.rank // 2}")
    if config.batch_size > 1:
        tips.append(f"batch size {config.batch_size} -> 1 (raise gradient accumulation instead)")
    if config.train_text_encoder:
        tips.append("turn off text-encoder training")
    if config.gradient_checkpointing == "off":
        tips.append("turn on gradient checkpointing")
    advice = "; ".join(tips) if tips else "close other programs using the GPU, or use the Quick preset"
    return OutOfMemoryError(
        f"Training ran out of {device} memory. Try again with lower settings: {advice}. "
        "Finished checkpoints were kept."
    )


def disk_full_error(where: str) -> DiskFullError:
    return DiskFullError(
        f"The disk is full (while writing {where}). Earlier checkpoints and the Library are unchanged; "
        "free some space and train again."
    )
