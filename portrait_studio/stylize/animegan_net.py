"""The AnimeGANv2 generator, laid out so the published PyTorch weights load into it strictly.

The published files (``face_paint_512_v2.pt``, ``face_paint_512_v1.pt``, ``paprika.pt``,
``celeba_distill.pt`` in bryandlee/animegan2-pytorch) are plain state dicts of 77 float32 tensors,
2,143,552 parameters. The layout is fixed by those names, so the module tree here must produce them:

* every conv unit is ``[pad, conv, GroupNorm(1), LeakyReLU(0.2)]`` so its tensors are ``N.1.weight``
  (conv) and ``N.2.weight`` / ``N.2.bias`` (norm);
* the inverted-residual blocks keep their layers under ``block_c.N.layers``;
* only the depthwise convs have a bias.

Pixels go in and come out in [-1, 1]. The decoder upsamples twice with bilinear interpolation; the
torch.hub entry point aligns corners to the encoder's sizes (our default), the repository's
``test.py`` doubles the size instead (``align_corners=False``, needs sides divisible by 4).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

NUM_TENSORS = 77
NUM_PARAMETERS = 2_143_552
# Down-sampling convs pad only right and bottom, as TensorFlow's "SAME" does for stride 2.
_PAD_RIGHT_BOTTOM = (0, 1, 0, 1)


class ConvUnit(nn.Sequential):
    """Reflection pad, conv, one-group GroupNorm, LeakyReLU(0.2): indices 0..3 fix the key names."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int = 3,
        stride: int = 1,
        padding: int | tuple[int, int, int, int] | None = None,
        depthwise: bool = False,
    ) -> None:
        pad = kernel // 2 if padding is None else padding
        super().__init__(
            nn.ReflectionPad2d(pad),
            nn.Conv2d(
                in_channels, out_channels, kernel, stride=stride, padding=0,
                groups=in_channels if depthwise else 1, bias=depthwise,
            ),
            nn.GroupNorm(1, out_channels),
            nn.LeakyReLU(0.2, inplace=True),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2-style block: 1x1 expand, 3x3 depthwise, 1x1 project; residual when shapes agree."""

    def __init__(self, in_channels: int, out_channels: int, expansion: int = 2) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.residual = in_channels == out_channels
        self.layers = nn.Sequential(
            ConvUnit(in_channels, hidden, kernel=1),
            ConvUnit(hidden, hidden, depthwise=True),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.GroupNorm(1, out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(x)
        return x + y if self.residual else y


class AnimeGANGenerator(nn.Module):
    """Encoder (two stride-2 stages), eight-block residual middle, bilinear decoder, tanh output."""

    def __init__(self, align_corners: bool = True) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.block_a = nn.Sequential(
            ConvUnit(3, 32, kernel=7),
            ConvUnit(32, 64, stride=2, padding=_PAD_RIGHT_BOTTOM),
            ConvUnit(64, 64),
        )
        self.block_b = nn.Sequential(
            ConvUnit(64, 128, stride=2, padding=_PAD_RIGHT_BOTTOM),
            ConvUnit(128, 128),
        )
        self.block_c = nn.Sequential(
            ConvUnit(128, 128),
            InvertedResidual(128, 256),
            *[InvertedResidual(256, 256) for _ in range(3)],
            ConvUnit(256, 128),
        )
        self.block_d = nn.Sequential(ConvUnit(128, 128), ConvUnit(128, 128))
        self.block_e = nn.Sequential(ConvUnit(128, 64), ConvUnit(64, 64), ConvUnit(64, 32, kernel=7))
        self.out_layer = nn.Sequential(nn.Conv2d(32, 3, 1, bias=False), nn.Tanh())

    def _upsample(self, x: torch.Tensor, size: torch.Size) -> torch.Tensor:
        if self.align_corners:
            return F.interpolate(x, size, mode="bilinear", align_corners=True)
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (N, 3, H, W) in [-1, 1]; returns the same shape in [-1, 1]."""
        half = self.block_a(x)
        y = self.block_c(self.block_b(half))
        y = self.block_d(self._upsample(y, half.shape[-2:]))
        y = self.block_e(self._upsample(y, x.shape[-2:]))
        return self.out_layer(y)


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Names and shapes of the published state dict, in file order."""
    return {name: tuple(t.shape) for name, t in AnimeGANGenerator().state_dict().items()}


def random_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict of the real architecture (PyTorch's default init, seeded)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return {name: t.detach().clone() for name, t in AnimeGANGenerator().state_dict().items()}


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a published ``.pt`` (plain state dict, unpickled with ``weights_only``) or a ``.safetensors``.

    Raises ``ValueError`` with the reason when the file is not a state dict of tensors.
    """
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ValueError(f"expected a plain state dict of tensors, found {type(loaded).__name__}")
    return dict(loaded)


def state_dict_problems(state: Mapping[str, torch.Tensor]) -> list[str]:
    """Differences from the published layout (missing, unexpected, wrong shape); empty when it matches."""
    expected = expected_shapes()
    problems = [f"missing {name}" for name in expected if name not in state]
    problems += [f"unexpected {name}" for name in state if name not in expected]
    problems += [
        f"{name} has shape {tuple(state[name].shape)}, expected {shape}"
        for name, shape in expected.items()
        if name in state and tuple(state[name].shape) != shape
    ]
    return problems


def generator_from_state_dict(
    state: Mapping[str, torch.Tensor], align_corners: bool = True, dtype: torch.dtype = torch.float32
) -> AnimeGANGenerator:
    """An eval-mode generator with ``state`` loaded strictly (float32 unless asked, no gradients)."""
    net = AnimeGANGenerator(align_corners=align_corners).to(dtype)
    net.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True)
    net.requires_grad_(False)
    return net.eval()


def build_animegan_tiny(folder: Path, role: Any) -> None:
    """Tiny-profile builder: a random state dict of the REAL architecture under the published file name.

    The format fixes every shape, so "tiny" cannot be smaller than the real 8.6 MB; it is still quick.
    """
    filename = getattr(role.source, "filename", None) or f"{role.name}.pt"
    seed = zlib.crc32(role.name.encode())
    torch.save(random_state_dict(seed), folder / filename)
