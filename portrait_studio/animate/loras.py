"""Camera-motion LoRAs: names to model roles to files.

They are applied together with the likeness LoRA in one call of the registry's ``loras_applied``
(one ``set_adapters`` for all of them; nesting two appliers would deactivate the outer one's adapters),
which validates every file and always unloads on the way out.
"""

from __future__ import annotations

from pathlib import Path

from portrait_studio.errors import InputError, MissingWeightsError
from portrait_studio.models.locator import download_command
from portrait_studio.models.manager import ModelManager
from portrait_studio.models.roles import MOTION_LORAS

LoraList = list[tuple[Path, float]]


def motion_role(motion: str) -> str:
    """``zoom-in`` -> ``motion_lora_zoom_in``."""
    if motion not in MOTION_LORAS:
        raise InputError(f"Unknown camera motion '{motion}'. Choose one of: {', '.join(MOTION_LORAS)}.")
    return "motion_lora_" + motion.replace("-", "_")


def motion_lora_paths(manager: ModelManager, motions: list[tuple[str, float]]) -> LoraList:
    """Weights files of the chosen camera motions (downloaded when allowed, else MissingWeightsError)."""
    paths: LoraList = []
    for motion, weight in motions:
        role = motion_role(motion)
        path = manager.locator.path(role)
        if not path.is_file():
            raise MissingWeightsError(role, str(path), download_command(role), "file missing")
        paths.append((path, weight))
    return paths
