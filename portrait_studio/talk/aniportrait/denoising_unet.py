"""AniPortrait's denoising UNet: SD1.5's UNet inflated over frames, AnimateDiff-style motion modules after
every spatial layer (mid block included), and the PoseGuider's five features added to the running sample.

We reuse diffusers' ``UNetMotionModel`` (the machinery Animate runs) with two changes the published
network needs, and map the published keys onto it:

* the pose features: feature 0 is added to ``conv_in``'s output and feature i to down block i's output
  sample (not to the skip connections it already emitted), by forward hooks;
* the motion modules' input GroupNorm: AniPortrait normalises every frame on its own
  (``b c f h w -> (b f) c h w``), diffusers over all frames together; :class:`FrameGroupNorm` restores
  the per-frame statistics with the same ``norm.weight``/``norm.bias``.

Key mapping (published -> diffusers), motion modules only; every spatial key is the same:
``motion_modules.N.temporal_transformer.`` -> ``motion_modules.N.``, ``attention_blocks.{0,1}`` ->
``attn{1,2}``, ``norms.{0,1}`` -> ``norm{1,2}``, ``ff_norm`` -> ``norm3``, and the two attention blocks'
identical sinusoidal ``pos_encoder.pe`` tables -> the block's one ``pos_embed.pe`` (diffusers adds it
before both attentions, as the reference does).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from diffusers import UNetMotionModel
from torch import nn

MOTION_HEADS = 8
MOTION_MAX_FRAMES = 32  # positional table length (temporal_position_encoding_max_len)
_SD_KEYS = ("block_out_channels", "layers_per_block", "cross_attention_dim", "norm_num_groups", "in_channels",
            "out_channels", "sample_size", "downsample_padding", "mid_block_scale_factor", "act_fn", "norm_eps",
            "use_linear_projection")


_MOTION_BLOCKS = {"CrossAttnDownBlock2D": "CrossAttnDownBlockMotion", "DownBlock2D": "DownBlockMotion",
                  "CrossAttnUpBlock2D": "CrossAttnUpBlockMotion", "UpBlock2D": "UpBlockMotion"}


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm over each frame of a (b, c, f, h, w) tensor, like a 2-D GroupNorm on (b f, c, h, w)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            return super().forward(x)
        b, c, f, h, w = x.shape
        flat = x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        out = F.group_norm(flat, self.num_groups, self.weight, self.bias, self.eps)
        return out.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)


def build_motion_unet(unet_config: dict) -> UNetMotionModel:
    """The denoising UNet for an SD1.5-style ``unet/config.json`` (heads = its legacy ``attention_head_dim``)."""
    kwargs = {k: unet_config[k] for k in _SD_KEYS if k in unet_config}
    for side in ("down_block_types", "up_block_types"):
        if side in unet_config:
            kwargs[side] = tuple(_MOTION_BLOCKS[t] for t in unet_config[side])
    heads = unet_config.get("num_attention_heads") or unet_config.get("attention_head_dim", 8)
    unet = UNetMotionModel(**kwargs, num_attention_heads=heads, motion_num_attention_heads=MOTION_HEADS,
                           motion_max_seq_length=MOTION_MAX_FRAMES, use_motion_mid_block=True)
    for name, module in list(unet.named_modules()):
        if name.endswith(".norm") and ".motion_modules." in f".{name}" and type(module) is nn.GroupNorm:
            parent, child = name.rsplit(".", 1)
            frame_norm = FrameGroupNorm(module.num_groups, module.num_channels, module.eps, module.affine)
            frame_norm.load_state_dict(module.state_dict())
            setattr(unet.get_submodule(parent), child, frame_norm)
    return unet


_RENAMES = ((".temporal_transformer.", "."), (".attention_blocks.0.", ".attn1."), (".attention_blocks.1.", ".attn2."),
            (".norms.0.", ".norm1."), (".norms.1.", ".norm2."), (".ff_norm.", ".norm3."))


def to_diffusers_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Published denoising-UNet / motion-module keys -> ``UNetMotionModel`` keys (see the module docstring)."""
    out: dict[str, torch.Tensor] = {}
    tables: dict[str, list[torch.Tensor]] = {}
    for key, value in state.items():
        if ".motion_modules." not in f".{key}":
            out[key] = value
            continue
        new = key
        for old, repl in _RENAMES:
            new = new.replace(old, repl)
        if new.endswith(".pos_encoder.pe"):
            block = new.rsplit(".attn", 1)[0]
            tables.setdefault(f"{block}.pos_embed.pe", []).append(value)
            continue
        out[new] = value
    for key, values in tables.items():
        if any(not torch.equal(values[0], v) for v in values[1:]):
            raise ValueError(f"the attention blocks of {key.rsplit('.pos_embed', 1)[0]} have different position tables")
        out[key] = values[0]
    return out


def to_published_keys(layout: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """``UNetMotionModel`` key -> shape, renamed to the published files' keys (the inverse of the above)."""
    out: dict[str, tuple[int, ...]] = {}
    for key, shape in layout.items():
        if ".motion_modules." not in f".{key}":
            out[key] = shape
            continue
        head, index, rest = key.partition(".motion_modules.")[0], *key.partition(".motion_modules.")[2].split(".", 1)
        rest = f".{rest}"
        for old, repl in reversed(_RENAMES[1:]):
            rest = rest.replace(repl, old)
        prefix = f"{head}.motion_modules.{index}.temporal_transformer"
        if rest.endswith(".pos_embed.pe"):
            block = rest[: -len(".pos_embed.pe")]
            for i in (0, 1):
                out[f"{prefix}{block}.attention_blocks.{i}.pos_encoder.pe"] = shape
            continue
        out[prefix + rest] = shape
    return out


class DenoisingUNet(nn.Module):
    """``UNetMotionModel`` + the PoseGuider features: (b, 4, f, h, w) noisy latents -> predicted (v or noise)."""

    def __init__(self, unet: UNetMotionModel) -> None:
        super().__init__()
        self.unet = unet
        self._pose: list[torch.Tensor] | None = None
        unet.conv_in.register_forward_hook(self._add_pose(0))
        for i, block in enumerate(unet.down_blocks):
            block.register_forward_hook(self._add_pose(i + 1))

    def _add_pose(self, index: int):  # noqa: ANN202 - a hook
        def hook(_module: nn.Module, _args: tuple, output: torch.Tensor | tuple) -> torch.Tensor | tuple:
            if self._pose is None:
                return output
            feature = self._pose[index]
            b, c, f, h, w = feature.shape
            flat = feature.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
            if isinstance(output, tuple):  # a down block: (sample, skip samples); only the sample gets it
                return (output[0] + flat, *output[1:])
            return output + flat

        return hook

    @contextmanager
    def _posed(self, pose: list[torch.Tensor] | None) -> Iterator[None]:
        self._pose = pose
        try:
            yield
        finally:
            self._pose = None

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | int, encoder_hidden_states: torch.Tensor,
                pose_features: list[torch.Tensor] | None = None) -> torch.Tensor:
        # every frame cross-attends to its batch row's image embedding (the reference repeats it per frame too)
        per_frame = encoder_hidden_states.repeat_interleave(sample.shape[2], dim=0)
        with self._posed(pose_features):
            return self.unet(sample, timestep, encoder_hidden_states=per_frame, return_dict=False)[0]
