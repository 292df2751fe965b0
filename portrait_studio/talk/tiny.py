"""Tiny random SadTalker files in the published on-disk format, for tests and offline demos.

Same file names, same key grammar, smaller channels; the sizes are recorded in each safetensors
file's metadata so the loader builds matching networks. The mapping networks are written as torch
pickles with a ``mapping`` entry, like the release files, so the conversion path is exercised too.
"""

from __future__ import annotations

from pathlib import Path

import torch

from portrait_studio.models.roles import Role
from portrait_studio.talk.checkpoint import (
    MAPPING_FILES,
    RENDER_SIZES,
    checkpoint_layout,
    checkpoint_name,
    mapping_layout,
    save_atomic,
    synthetic_state,
)
from portrait_studio.talk.config import CONFIG_METADATA_KEY, tiny_config


def build_sadtalker(folder: Path, role: Role | None = None) -> None:
    cfg = tiny_config()
    folder.mkdir(parents=True, exist_ok=True)
    for seed, size in enumerate(RENDER_SIZES):
        state = synthetic_state(checkpoint_layout(cfg), seed=seed)
        save_atomic(state, folder / checkpoint_name(size), {CONFIG_METADATA_KEY: cfg.to_json(), "format": "pt"})
    for seed, (mode, filename) in enumerate(MAPPING_FILES.items()):
        mapping = synthetic_state(mapping_layout(cfg, mode), seed=10 + seed)
        torch.save({"mapping": mapping, "epoch": 0}, folder / filename)
