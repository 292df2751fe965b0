"""The published AniPortrait files (torch pickles) and loading our networks from them.

``ZJYang/AniPortrait`` ships plain state dicts: ``pose_guider.pth``, ``reference_unet.pth`` (a whole SD1.5
``UNet2DConditionModel``), ``denoising_unet.pth`` (the spatial half of the video UNet),
``motion_module.pth`` (its AnimateDiff-style temporal modules), ``audio2mesh.pt`` and ``audio2pose.pt``.
Each is unpickled once with ``weights_only=True`` (a file that needs code to unpickle is refused) and kept
as a safetensors copy beside our other converted weights; every later load reads the copy.

The reference loads the audio models with ``strict=False`` over a ``wav2vec2-base-960h`` encoder: we
require every head key, accept ``audio_encoder.*`` keys as overrides of that encoder, and refuse any
other key. Files written by torch < 2.1 spell the encoder's weight-normed conv ``weight_g``/``weight_v``;
we read them as the ``parametrizations.weight.original0/1`` that current torch uses.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from portrait_studio.errors import MissingWeightsError
from portrait_studio.models.locator import download_command
from portrait_studio.talk.aniportrait.audio_models import POSE_HEADS, Audio2Mesh, Audio2Pose
from portrait_studio.talk.aniportrait.pose_guider import PoseGuider, PoseGuiderConfig
from portrait_studio.talk.checkpoint import CheckpointMismatch, _check_and_load, save_atomic

ROLE = "aniportrait"
PUBLISHED_FILES = {
    "pose_guider": "pose_guider.pth",
    "reference_unet": "reference_unet.pth",
    "denoising_unet": "denoising_unet.pth",
    "motion_module": "motion_module.pth",
    "audio2mesh": "audio2mesh.pt",
    "audio2pose": "audio2pose.pt",
}
PUBLISHED_HEAD_DIM = 88  # PoseGuider transformers: 16 heads x 88 = 1408 wide
_OLD_WEIGHT_NORM = {
    ".weight_g": ".parametrizations.weight.original0",
    ".weight_v": ".parametrizations.weight.original1",
}


def _refused(path: Path, reason: str) -> MissingWeightsError:
    return MissingWeightsError(ROLE, str(path), download_command(ROLE), f"{path.name}: {reason}")


def read_published(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a published pickle, data only; a damaged, foreign or code-carrying file names itself."""
    if not path.is_file():
        raise _refused(path, "the file is missing")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated download, not a pickle, or a pickle that needs code
        raise _refused(path, f"the file could not be read as weights ({type(exc).__name__}: {str(exc)[:120]})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise _refused(path, "the file holds no plain state dict of tensors")
    return {_modern_key(k.removeprefix("module.")): v.contiguous() for k, v in state.items()}


def _modern_key(key: str) -> str:
    for old, new in _OLD_WEIGHT_NORM.items():
        if key.endswith(old):
            return key[: -len(old)] + new
    return key


def converted(source: Path, cache_dir: Path) -> Path:
    """Our safetensors copy of a published pickle (written once; rewritten if the source is newer)."""
    digest = hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:10]
    target = cache_dir / ROLE / f"{source.stem}-{digest}.safetensors"
    if not target.is_file() or target.stat().st_mtime < source.stat().st_mtime:
        save_atomic(read_published(source), target, {"source": source.name, "format": "pt"})
    return target


def load_state(source: Path, cache_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(converted(source, cache_dir)))


# ---- building our networks from a state dict ----------------------------------------------------------
def pose_guider_config(state: dict[str, torch.Tensor]) -> PoseGuiderConfig:
    """Sizes from the tensors: the published 320 channels with 16 x 88 heads; narrower stand-ins use one head."""
    try:
        channels = state["final_proj.weight"].shape[0]
        inner = state["cross_attn1.proj_in.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointMismatch(f"not a PoseGuider state dict (no {exc})") from None
    if inner % PUBLISHED_HEAD_DIM == 0:
        return PoseGuiderConfig(channels, inner // PUBLISHED_HEAD_DIM, PUBLISHED_HEAD_DIM)
    return PoseGuiderConfig(channels, 1, inner, norm_groups=min(32, channels))


def load_pose_guider(state: dict[str, torch.Tensor], label: str = "pose_guider.pth") -> PoseGuider:
    module = PoseGuider(pose_guider_config(state))
    _check_and_load(module, state, label)
    return module


def load_audio_model(kind: str, state: dict[str, torch.Tensor], wav2vec_dir: Path,
                     label: str | None = None) -> Audio2Mesh | Audio2Pose:
    """``kind`` "audio2mesh" or "audio2pose": wav2vec2 from ``wav2vec_dir`` (from_pretrained), then the file."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    label = label or PUBLISHED_FILES[kind]
    config = Wav2Vec2Config.from_pretrained(str(wav2vec_dir), local_files_only=True)
    try:
        latent = state["in_fn.weight"].shape[0]
        if kind == "audio2mesh":
            module: Audio2Mesh | Audio2Pose = Audio2Mesh(config, latent, state["out_fn.weight"].shape[0])
        else:
            layers = len({k.split(".")[2] for k in state if k.startswith("transformer_decoder.layers.")})
            module = Audio2Pose(config, latent, state["pose_map_r.weight"].shape[0], layers, POSE_HEADS)
    except KeyError as exc:
        raise CheckpointMismatch(f"{label}: not an {kind} state dict (no {exc})") from None
    encoder = Wav2Vec2Model.from_pretrained(str(wav2vec_dir), local_files_only=True)
    merged = {k: v for k, v in module.state_dict().items() if k == "PPE.pe"}
    merged.update({f"audio_encoder.{k}": v for k, v in encoder.state_dict().items()})
    expected = module.state_dict()
    unknown = sorted(k for k in state if k not in expected)
    optional = ("audio_encoder.", "PPE.pe")  # the encoder comes from wav2vec2; the position table is a formula
    missing_heads = sorted(k for k in expected if not k.startswith(optional) and k not in state)
    if unknown or missing_heads:
        examples = ", ".join((unknown + missing_heads)[:3])
        raise CheckpointMismatch(f"{label}: {len(missing_heads)} missing, {len(unknown)} unexpected keys ({examples})")
    merged.update(state)
    _check_and_load(module, merged, label)
    return module


def state_layout(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}
