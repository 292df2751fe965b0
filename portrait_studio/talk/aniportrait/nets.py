"""Loading AniPortrait's five networks from a folder holding the published files.

The reference builds both UNets from SD1.5's ``unet/config.json`` and then overwrites their weights with
``reference_unet.pth`` (strict) and ``motion_module.pth`` + ``denoising_unet.pth`` (in that order, the later
winning). We read the UNet sizes from the tensors themselves (for the published files that gives exactly
SD1.5's config), so no base-model download is needed for this engine, and we require the two denoising files
together to cover every key (the reference would silently keep SD1.5 weights for any key they lack).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from portrait_studio.errors import MissingWeightsError
from portrait_studio.models.locator import download_command, is_random_weights
from portrait_studio.talk.aniportrait.audio_models import Audio2Mesh, Audio2Pose
from portrait_studio.talk.aniportrait.checkpoint import (
    PUBLISHED_FILES,
    ROLE,
    load_audio_model,
    load_pose_guider,
    load_state,
)
from portrait_studio.talk.aniportrait.denoising_unet import DenoisingUNet, build_motion_unet, to_diffusers_keys
from portrait_studio.talk.aniportrait.pose_guider import PoseGuider
from portrait_studio.talk.aniportrait.reference_net import build_reference_net
from portrait_studio.talk.checkpoint import CheckpointMismatch, _check_and_load

SD15_HEADS = 8  # SD1.5's legacy "attention_head_dim": 8 heads in every block


@dataclass
class AniPortraitNets:
    pose_guider: PoseGuider
    reference_net: nn.Module
    denoising_unet: DenoisingUNet
    audio2mesh: Audio2Mesh
    audio2pose: Audio2Pose
    random_weights: bool


def unet_config_from_state(state: dict[str, torch.Tensor]) -> dict:
    """SD1.5-style UNet config read off a UNet state dict (block widths, layers, cross-attention width)."""
    try:
        blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"down_blocks\.(\d+)\.", k))})
        widths = [state[f"down_blocks.{i}.resnets.0.conv1.weight"].shape[0] for i in blocks]
        layers = len({k.split(".")[3] for k in state if k.startswith("down_blocks.0.resnets.")})
        attn_blocks = [i for i in blocks if f"down_blocks.{i}.attentions.0.proj_in.weight" in state]
        cross = state[f"down_blocks.{attn_blocks[0]}.attentions.0.transformer_blocks.0.attn2.to_k.weight"].shape[1]
        in_channels = state["conv_in.weight"].shape[1]
    except (KeyError, IndexError) as exc:
        raise CheckpointMismatch(f"not an SD1.5-style UNet state dict (no {exc})") from None
    down = ["CrossAttnDownBlock2D" if i in attn_blocks else "DownBlock2D" for i in blocks]
    up = ["CrossAttnUpBlock2D" if t.startswith("CrossAttn") else "UpBlock2D" for t in reversed(down)]
    return dict(block_out_channels=widths, layers_per_block=layers, cross_attention_dim=cross,
                attention_head_dim=SD15_HEADS, in_channels=in_channels, out_channels=in_channels,
                down_block_types=down, up_block_types=up, norm_num_groups=min(32, widths[0]))


def _published_paths(folder: Path) -> dict[str, Path]:
    paths = {part: folder / name for part, name in PUBLISHED_FILES.items()}
    for path in paths.values():
        if not path.is_file():
            raise MissingWeightsError(ROLE, str(folder), download_command(ROLE), f"{path.name} is missing")
    return paths


def load_nets(folder: Path, wav2vec_dir: Path, cache_dir: Path) -> AniPortraitNets:
    """Every network in eval mode; a missing, damaged or mismatched file raises MissingWeightsError naming it."""
    paths = _published_paths(folder)
    part = "pose_guider"
    try:
        pose_guider = load_pose_guider(load_state(paths[part], cache_dir))
        part = "reference_unet"
        reference_state = load_state(paths[part], cache_dir)
        reference = build_reference_net(unet_config_from_state(reference_state))
        _check_and_load(reference, reference_state, paths[part].name)
        part = "denoising_unet"
        combined = to_diffusers_keys({**load_state(paths["motion_module"], cache_dir),
                                      **load_state(paths[part], cache_dir)})
        unet = build_motion_unet(unet_config_from_state(combined))
        _check_and_load(unet, combined, "motion_module.pth + denoising_unet.pth")
        audio = {}
        for part in ("audio2mesh", "audio2pose"):
            audio[part] = load_audio_model(part, load_state(paths[part], cache_dir), wav2vec_dir)
    except (CheckpointMismatch, ValueError) as exc:
        raise MissingWeightsError(ROLE, str(paths[part]), download_command(ROLE), str(exc)) from exc
    return AniPortraitNets(pose_guider, reference.eval(), DenoisingUNet(unet).eval(), audio["audio2mesh"],
                           audio["audio2pose"], is_random_weights(folder))
