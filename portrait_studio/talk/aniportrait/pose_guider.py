"""The PoseGuider: rendered face-landmark images -> features added to the denoising UNet's latents.

Our own definition of AniPortrait's ``PoseGuider(noise_latent_channels=320, use_ca=True)``, loading
``pose_guider.pth`` key for key. A conv stem brings the 3-channel landmark image to latent resolution
(/8) and 320 channels (times a learned ``scale``); four more stages follow (/16 320, /32 640, /64 1280,
/64 1280), each but the stem closed by a one-block transformer over the spatial positions. That gives
five feature maps, the sizes of the UNet's conv_in output and of its four down blocks' outputs.

The published forward also pushes the reference pose image through the same layers and passes it to
those transformers as ``encoder_hidden_states``; but their blocks are built without cross-attention
(``cross_attention_dim=None``), so that input never reaches an output. We do not compute it (the golden
test feeds it to the reference definition and checks ours without it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.attention import BasicTransformerBlock
from torch import nn

# (in, out, kernel, stride) of the stem's eight convolutions; every one is followed by BatchNorm + ReLU.
_STEM = ((3, 3, 3, 1), (3, 16, 4, 2), (16, 16, 3, 1), (16, 32, 4, 2),
         (32, 32, 3, 1), (32, 64, 4, 2), (64, 64, 3, 1), (64, 128, 3, 1))
STEM_CHANNELS = 128


@dataclass(frozen=True)
class PoseGuiderConfig:
    latent_channels: int = 320  # channels of the UNet's first stage
    heads: int = 16  # the transformers' heads and head size (16 x 88, diffusers' Transformer2DModel defaults)
    head_dim: int = 88
    norm_groups: int = 32


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride=stride, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]


class SpatialTransformer(nn.Module):
    """GroupNorm -> 1x1 conv in -> one self-attention transformer block over h*w -> 1x1 conv out, residual."""

    def __init__(self, channels: int, cfg: PoseGuiderConfig) -> None:
        super().__init__()
        inner = cfg.heads * cfg.head_dim
        self.norm = nn.GroupNorm(cfg.norm_groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(inner, cfg.heads, cfg.head_dim)])
        self.proj_out = nn.Conv2d(inner, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        hidden = self.proj_in(self.norm(x))
        inner = hidden.shape[1]
        hidden = hidden.permute(0, 2, 3, 1).reshape(b, h * w, inner)
        for block in self.transformer_blocks:
            hidden = block(hidden)
        hidden = hidden.reshape(b, h, w, inner).permute(0, 3, 1, 2).contiguous()
        return self.proj_out(hidden) + x


class PoseGuider(nn.Module):
    def __init__(self, cfg: PoseGuiderConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or PoseGuiderConfig()
        c = cfg.latent_channels
        self.conv_layers = nn.Sequential(*(m for spec in _STEM for m in _conv_bn_relu(*spec)))
        self.final_proj = nn.Conv2d(STEM_CHANNELS, c, 1)
        self.conv_layers_1 = nn.Sequential(*_conv_bn_relu(c, c, 3, 1), *_conv_bn_relu(c, c, 3, 2))
        self.conv_layers_2 = nn.Sequential(*_conv_bn_relu(c, c, 3, 1), *_conv_bn_relu(c, 2 * c, 3, 2))
        self.conv_layers_3 = nn.Sequential(*_conv_bn_relu(2 * c, 2 * c, 3, 1), *_conv_bn_relu(2 * c, 4 * c, 3, 2))
        self.conv_layers_4 = nn.Sequential(*_conv_bn_relu(4 * c, 4 * c, 3, 1))
        self.cross_attn1 = SpatialTransformer(c, cfg)
        self.cross_attn2 = SpatialTransformer(2 * c, cfg)
        self.cross_attn3 = SpatialTransformer(4 * c, cfg)
        self.cross_attn4 = SpatialTransformer(4 * c, cfg)
        self.scale = nn.Parameter(torch.full((1,), 2.0))

    def forward(self, pose: torch.Tensor) -> list[torch.Tensor]:
        """pose (b, 3, f, h, w) in [-1, 1] -> five (b, c_i, f, h_i, w_i) features (h/8 ... h/64)."""
        b, _, f, h, w = pose.shape
        x = pose.permute(0, 2, 1, 3, 4).reshape(b * f, 3, h, w)
        x = self.final_proj(self.conv_layers(x)) * self.scale
        features = [x]
        stages = ((self.conv_layers_1, self.cross_attn1), (self.conv_layers_2, self.cross_attn2),
                  (self.conv_layers_3, self.cross_attn3), (self.conv_layers_4, self.cross_attn4))
        for convs, attention in stages:
            x = attention(convs(x))
            features.append(x)
        return [_to_video(feature, b, f) for feature in features]


def _to_video(x: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
    """(b f) c h w -> b c f h w."""
    _, c, h, w = x.shape
    return x.reshape(batch, frames, c, h, w).permute(0, 2, 1, 3, 4)
