"""Likeness training: a personal SD1.5 LoRA from face crops, run as a resumable background job."""

from portrait_studio.likeness.config import PRESETS, TrainingConfig, preset_config, unique_trigger
from portrait_studio.likeness.merge import MergePlan, ValidationScore, merge_checkpoints, merge_state_dicts
from portrait_studio.likeness.trainer import CheckpointReport, StepReport, TrainingResult, train_lora

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
