"""Building blocks of the face renderer (key names follow the published checkpoints).

Batch norms run in eval mode only: their running statistics come from the checkpoint.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def coordinate_grid_3d(depth: int, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """A (d, h, w, 3) grid of (x, y, z) in [-1, 1], x varying fastest (grid_sample's order)."""

    def axis(n: int) -> torch.Tensor:
        return torch.arange(n, dtype=like.dtype, device=like.device) / (n - 1) * 2 - 1

    zz, yy, xx = torch.meshgrid(axis(depth), axis(height), axis(width), indexing="ij")
    return torch.stack([xx, yy, zz], dim=-1)


def gaussian_heatmaps(keypoints: torch.Tensor, spatial: tuple[int, int, int], variance: float) -> torch.Tensor:
    """(b, k, 3) keypoints -> (b, k, d, h, w) isotropic gaussians on the [-1, 1] grid."""
    grid = coordinate_grid_3d(*spatial, like=keypoints)
    diff = grid[None, None] - keypoints[:, :, None, None, None, :]
    return torch.exp(-0.5 * diff.pow(2).sum(-1) / variance)


class ConvBlock2d(nn.Module):
    """conv -> batch norm -> activation ("SameBlock2d" in the checkpoints' layout)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, padding: int = 1, leaky: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=padding)
        self.norm = nn.BatchNorm2d(cout)
        self.leaky = leaky

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x))
        return F.leaky_relu(x, 0.01) if self.leaky else F.relu(x)


class Down2d(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), 2)


class Down3d(nn.Module):
    """Halves height and width, keeps depth."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3, padding=1)
        self.norm = nn.BatchNorm3d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool3d(F.relu(self.norm(self.conv(x))), (1, 2, 2))


class Up3d(nn.Module):
    """Nearest upsampling of height and width, then conv -> norm -> relu."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3, padding=1)
        self.norm = nn.BatchNorm3d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=(1, 2, 2))
        return F.relu(self.norm(self.conv(x)))


class PreActResidual3d(nn.Module):
    """x + conv(relu(norm(conv(relu(norm(x)))))) at constant shape."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1)
        self.norm1 = nn.BatchNorm3d(channels)
        self.norm2 = nn.BatchNorm3d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(self.norm1(x)))
        return x + self.conv2(F.relu(self.norm2(h)))


def _feature_width(expansion: int, level: int, cap: int) -> int:
    return min(cap, expansion * 2**level)


class Hourglass3d(nn.Module):
    """3D U-Net over (c, d, h, w) volumes; the output keeps the input channels appended."""

    def __init__(self, expansion: int, in_channels: int, levels: int, cap: int) -> None:
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.down_blocks = nn.ModuleList(
            Down3d(in_channels if i == 0 else _feature_width(expansion, i, cap), _feature_width(expansion, i + 1, cap))
            for i in range(levels)
        )
        ups = []
        for i in reversed(range(levels)):
            cin = (1 if i == levels - 1 else 2) * _feature_width(expansion, i + 1, cap)
            ups.append(Up3d(cin, _feature_width(expansion, i, cap)))
        self.decoder = nn.Module()
        self.decoder.up_blocks = nn.ModuleList(ups)
        self.out_channels = expansion + in_channels
        self.decoder.conv = nn.Conv3d(self.out_channels, self.out_channels, 3, padding=1)
        self.decoder.norm = nn.BatchNorm3d(self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [x]
        for block in self.encoder.down_blocks:
            skips.append(block(skips[-1]))
        out = skips.pop()
        for block in self.decoder.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return F.relu(self.decoder.norm(self.decoder.conv(out)))


class GaussianDownsample(nn.Module):
    """Blur with a gaussian then subsample by 1/scale (anti-aliased resize of the input image).

    The kernel is a buffer named ``weight`` because the published checkpoint stores it.
    """

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        sigma = (1 / scale - 1) / 2
        size = 2 * round(sigma * 4) + 1
        self.before = size // 2
        self.after = self.before - 1 if size % 2 == 0 else self.before
        coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
        g = torch.exp(-coords.pow(2) / (2 * sigma**2))
        kernel = torch.outer(g, g)
        kernel = kernel / kernel.sum()
        self.register_buffer("weight", kernel.expand(channels, 1, size, size).clone())
        self.step = int(1 / scale)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.before, self.after, self.before, self.after))
        x = F.conv2d(x, self.weight, groups=self.channels)
        return x[:, :, :: self.step, :: self.step]


class SpectralConv2d(nn.Module):
    """A conv whose weight is divided by its largest singular value, estimated from stored vectors.

    Stored as ``weight_orig`` / ``weight_u`` / ``weight_v`` like torch's spectral norm. At inference
    sigma = u . (W v) with the stored u and v (no power iteration), as in eval mode.
    """

    def __init__(self, cin: int, cout: int, kernel: int, padding: int = 0, bias: bool = True) -> None:
        super().__init__()
        self.weight_orig = nn.Parameter(torch.empty(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.register_buffer("weight_u", torch.randn(cout))
        self.register_buffer("weight_v", torch.randn(cin * kernel * kernel))
        self.padding = padding
        nn.init.kaiming_uniform_(self.weight_orig, a=5**0.5)

    def normalized_weight(self) -> torch.Tensor:
        w = self.weight_orig
        sigma = torch.dot(self.weight_u, w.reshape(w.shape[0], -1) @ self.weight_v)
        return w / sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.normalized_weight(), self.bias, padding=self.padding)


class SPADE(nn.Module):
    """Instance norm whose scale and shift are predicted per pixel from a conditioning map."""

    def __init__(self, channels: int, cond_channels: int, hidden: int) -> None:
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Conv2d(cond_channels, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        normalized = F.instance_norm(x)
        features = self.mlp_shared(F.interpolate(cond, size=x.shape[2:], mode="nearest"))
        return normalized * (1 + self.mlp_gamma(features)) + self.mlp_beta(features)


class SPADEResidual(nn.Module):
    def __init__(self, cin: int, cout: int, cond_channels: int, hidden: int) -> None:
        super().__init__()
        middle = min(cin, cout)
        self.learned_shortcut = cin != cout
        self.conv_0 = SpectralConv2d(cin, middle, 3, padding=1)
        self.conv_1 = SpectralConv2d(middle, cout, 3, padding=1)
        self.norm_0 = SPADE(cin, cond_channels, hidden)
        self.norm_1 = SPADE(middle, cond_channels, hidden)
        if self.learned_shortcut:
            self.conv_s = SpectralConv2d(cin, cout, 1, bias=False)
            self.norm_s = SPADE(cin, cond_channels, hidden)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        skip = self.conv_s(self.norm_s(x, cond)) if self.learned_shortcut else x
        h = self.conv_0(F.leaky_relu(self.norm_0(x, cond), 0.2))
        h = self.conv_1(F.leaky_relu(self.norm_1(h, cond), 0.2))
        return skip + h
