"""Tiny random SadTalker files in the published on-disk format, for tests and offline demos.

Same file names, same key grammar, smaller channels; the sizes are recorded in each safetensors
file's metadata so the loader builds matching networks. The mapping networks are written as the release
files are: full training checkpoints (SadTalker's ``load_cpk_mapping`` reads ``mapping``, ``discriminator``,
``optimizer_mapping``, ``optimizer_discriminator`` and ``epoch``), with Adam states from a real optimizer
step, so the conversion path meets everything the published pickle holds.
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
        torch.save(mapping_training_checkpoint(mapping, seed), folder / filename)


class _StandInDiscriminator(torch.nn.Module):
    """A small 1-D conv critic over coefficient windows: SadTalker's mapping discriminator is not published
    as code, so only its role in the file (a state dict with its own Adam state) is reproduced."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.seq = torch.nn.Sequential(
            torch.nn.Conv1d(channels, 16, 4), torch.nn.LeakyReLU(0.2), torch.nn.Conv1d(16, 1, 3)
        )


def _adam_state(params: list[torch.nn.Parameter], lr: float) -> dict:
    """The ``state_dict()`` of an Adam optimizer after one real step on ``params``."""
    optimizer = torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))
    loss = sum((p.float() ** 2).sum() for p in params)
    loss.backward()
    optimizer.step()
    return optimizer.state_dict()


def mapping_training_checkpoint(mapping: dict[str, torch.Tensor], seed: int = 0, epoch: int = 229) -> dict:
    """A mapping checkpoint in the published structure: weights, critic, both optimizers, epoch."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(100 + seed)
        params = [torch.nn.Parameter(t.clone().float()) for t in mapping.values() if t.is_floating_point()]
        critic = _StandInDiscriminator(next(iter(mapping.values())).shape[1])
        return {
            "mapping": mapping,
            "discriminator": {k: v.detach().clone() for k, v in critic.state_dict().items()},
            "optimizer_mapping": _adam_state(params, 2e-4),
            "optimizer_discriminator": _adam_state(list(critic.parameters()), 2e-4),
            "epoch": epoch,
        }
