"""Likeness training: a personal SD1.5 LoRA from face crops, run as a resumable background job.

The names below are loaded on first use (PEP 562): importing a light submodule such as
``portrait_studio.likeness.jobs`` must not import torch, so the app starts without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "PRESETS": "config",
    "TrainingConfig": "config",
    "preset_config": "config",
    "unique_trigger": "config",
    "MergePlan": "merge",
    "ValidationScore": "merge",
    "merge_checkpoints": "merge",
    "merge_state_dicts": "merge",
    "CheckpointReport": "trainer",
    "StepReport": "trainer",
    "TrainingResult": "trainer",
    "train_lora": "trainer",
}

__all__ = [
    "PRESETS",
    "CheckpointReport",
    "MergePlan",
    "StepReport",
    "TrainingConfig",
    "TrainingResult",
    "ValidationScore",
    "merge_checkpoints",
    "merge_state_dicts",
    "preset_config",
    "train_lora",
    "unique_trigger",
]

if TYPE_CHECKING:
    from portrait_studio.likeness.config import PRESETS, TrainingConfig, preset_config, unique_trigger
    from portrait_studio.likeness.merge import MergePlan, ValidationScore, merge_checkpoints, merge_state_dicts
    from portrait_studio.likeness.trainer import CheckpointReport, StepReport, TrainingResult, train_lora


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
