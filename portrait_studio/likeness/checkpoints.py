"""Crash-safe checkpoints: LoRA file, validation images, resume state, manifest (written last).

A checkpoint is built in ``checkpoints/.tmp-step-NNNNNN`` and renamed into ``step-NNNNNN`` with
``os.replace``; it counts as complete only when its ``manifest.json`` parses. The resume state
(LoRA + optimizer) of older checkpoints is deleted only after a newer checkpoint is safely in place,
so a crash at any moment leaves at least one complete checkpoint to resume from.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from portrait_studio.likeness.status import write_json_atomic

LORA_FILE = "pytorch_lora_weights.safetensors"
MANIFEST = "manifest.json"
RESUME_STATE = "resume_state.pt"
_NAME_RE = re.compile(r"^step-(\d{6})$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path
    manifest: dict[str, Any]

    @property
    def lora_file(self) -> Path:
        return self.path / LORA_FILE

    @property
    def resume_state(self) -> Path:
        return self.path / RESUME_STATE

    @property
    def scores(self) -> list[float]:
        return [float(s) for s in self.manifest.get("scores", [])]

    def validation_image(self, index: int) -> Path:
        return self.path / "validation" / f"{index:02d}.png"


# ---- LoRA state dicts in diffusers format ---------------------------------------------------------
def diffusers_lora_layers(model: torch.nn.Module, alpha: int, rank: int) -> dict[str, torch.Tensor]:
    """The model's peft LoRA in diffusers key format, with alpha/rank folded into the up weights.

    Folding makes the file self-describing: any loader that assumes alpha == rank (diffusers without
    metadata, kohya converters) applies exactly the strength we trained.
    """
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    scale = alpha / rank
    state = {}
    for key, value in get_peft_model_state_dict(model, save_embedding_layers=False).items():
        tensor = value.detach().float().cpu()
        state[key] = tensor * scale if "lora_B" in key else tensor.clone()
    converted = convert_state_dict_to_diffusers(state)
    # diffusers renames only the module names it knows (attention projections); the feed-forward and
    # proj_in/proj_out layers keep peft's lora_A/lora_B. One spelling for the whole file:
    return {_old_style(key): value for key, value in converted.items()}


_PEFT_TO_OLD = ((".lora_A.weight", ".lora.down.weight"), (".lora_B.weight", ".lora.up.weight"))


def _old_style(key: str) -> str:
    for peft_suffix, diffusers_suffix in _PEFT_TO_OLD:
        if key.endswith(peft_suffix):
            return key[: -len(peft_suffix)] + diffusers_suffix
    return key


def save_lora(folder: Path, unet_layers: Mapping[str, torch.Tensor],
              text_encoder_layers: Mapping[str, torch.Tensor] | None = None) -> Path:
    """Write ``pytorch_lora_weights.safetensors`` in the diffusers LoRA format into ``folder``."""
    from diffusers import StableDiffusionPipeline

    StableDiffusionPipeline.save_lora_weights(
        str(folder),
        unet_lora_layers=dict(unet_layers),
        text_encoder_lora_layers=dict(text_encoder_layers) if text_encoder_layers else None,
        safe_serialization=True,
    )
    return folder / LORA_FILE


def read_lora(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def save_prefixed_lora(folder: Path, state: Mapping[str, torch.Tensor]) -> Path:
    """Write a state dict read back from a LoRA file (keys ``unet.*`` / ``text_encoder.*``)."""
    unet = {k[len("unet."):]: v for k, v in state.items() if k.startswith("unet.")}
    text = {k[len("text_encoder."):]: v for k, v in state.items() if k.startswith("text_encoder.")}
    return save_lora(folder, unet, text or None)


# ---- writing ------------------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_checkpoint(
    checkpoints_dir: Path,
    step: int,
    fill: Callable[[Path], dict[str, Any]],
) -> Checkpoint:
    """Build checkpoint ``step`` atomically: ``fill(tmp_dir)`` writes files and returns manifest data.

    On any error (disk full included) the temp dir is removed and earlier checkpoints are untouched.
    """
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoints_dir / checkpoint_name(step)
    tmp = checkpoints_dir / f".tmp-{checkpoint_name(step)}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
        manifest = dict(fill(tmp))
        manifest["step"] = step
        manifest["complete"] = True
        write_json_atomic(tmp / MANIFEST, manifest)  # last: it marks the checkpoint complete
        _fsync_dir(tmp)
        if final.exists():  # a complete duplicate from an earlier attempt; ours is newer
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(checkpoints_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Checkpoint(step, final, manifest)


def drop_old_resume_states(checkpoints_dir: Path, keep_step: int) -> None:
    """Free disk: only the newest complete checkpoint needs its optimizer state."""
    for ckpt in complete_checkpoints(checkpoints_dir):
        if ckpt.step != keep_step:
            ckpt.resume_state.unlink(missing_ok=True)


def update_manifest(ckpt: Checkpoint, **changes: Any) -> Checkpoint:
    manifest = {**ckpt.manifest, **changes}
    write_json_atomic(ckpt.path / MANIFEST, manifest)
    return Checkpoint(ckpt.step, ckpt.path, manifest)


# ---- reading ------------------------------------------------------------------------------------
def complete_checkpoints(checkpoints_dir: Path) -> list[Checkpoint]:
    """Complete checkpoints, oldest first. Temp dirs and folders without a valid manifest are skipped."""
    found = []
    if not checkpoints_dir.is_dir():
        return found
    for path in checkpoints_dir.iterdir():
        match = _NAME_RE.match(path.name)
        if not match or not path.is_dir():
            continue
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (OSError, ValueError):
            continue
        if manifest.get("complete") and (path / LORA_FILE).is_file():
            found.append(Checkpoint(int(match.group(1)), path, manifest))
    return sorted(found, key=lambda c: c.step)


def latest_resumable(checkpoints_dir: Path) -> Checkpoint | None:
    for ckpt in reversed(complete_checkpoints(checkpoints_dir)):
        if ckpt.resume_state.is_file():
            return ckpt
    return None


def remove_stale_temps(checkpoints_dir: Path) -> None:
    if checkpoints_dir.is_dir():
        for path in checkpoints_dir.glob(".tmp-*"):
            shutil.rmtree(path, ignore_errors=True)


def save_resume_state(path: Path, state: dict[str, Any]) -> None:
    torch.save(state, path)


def load_resume_state(path: Path) -> dict[str, Any]:
    # Our own file, still loaded with weights_only=True: tensors, numbers and lists only.
    return torch.load(path, map_location="cpu", weights_only=True)
