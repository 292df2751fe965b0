"""3DMM coefficient regressor: a ResNet-50 body with seven 1x1 heads (id, exp, tex, angle, gamma, xy, z)."""

from __future__ import annotations

import torch
from torch import nn

from portrait_studio.talk.config import ReconConfig

HEAD_SIZES = (80, 64, 80, 3, 27, 2, 1)  # 257 coefficients in all
EXP_SLICE = slice(80, 144)
ANGLE_SLICE = slice(224, 227)
TRANS_SLICE = slice(254, 257)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (carries the stride) -> 1x1, with a projected shortcut when shapes change."""

    def __init__(self, cin: int, width: int, expansion: int, stride: int) -> None:
        super().__init__()
        cout = width * expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        skip = self.downsample(x) if self.downsample is not None else x
        return torch.relu(out + skip)


class _Backbone(nn.Module):
    def __init__(self, cfg: ReconConfig) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, cfg.stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(cfg.stem)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = cfg.stem
        for i, (width, count) in enumerate(zip(cfg.widths, cfg.blocks, strict=True)):
            blocks = []
            for j in range(count):
                blocks.append(Bottleneck(cin, width, cfg.expansion, 2 if (j == 0 and i > 0) else 1))
                cin = width * cfg.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return x.mean(dim=(2, 3), keepdim=True)


class FaceReconNet(nn.Module):
    """(b, 3, 224, 224) RGB in [0, 1] -> (b, 257) coefficients."""

    def __init__(self, cfg: ReconConfig) -> None:
        super().__init__()
        self.backbone = _Backbone(cfg)
        self.final_layers = nn.ModuleList(nn.Conv2d(self.backbone.out_channels, n, 1) for n in HEAD_SIZES)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        feature = self.backbone(image)
        return torch.cat([head(feature) for head in self.final_layers], dim=1).flatten(1)
