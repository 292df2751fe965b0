"""The face renderer: encode the source image into a 3D feature volume, warp it from the source
keypoints to the driving keypoints (dense motion + occlusion), decode with SPADE blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from portrait_studio.talk.config import RendererConfig
from portrait_studio.talk.nets.layers import (
    ConvBlock2d,
    Down2d,
    Hourglass3d,
    PreActResidual3d,
    SPADEResidual,
    coordinate_grid_3d,
    gaussian_heatmaps,
)

KP_VARIANCE = 0.01


class DenseMotion(nn.Module):
    """Per-keypoint sparse motions blended by a predicted soft mask into one dense flow."""

    def __init__(self, cfg: RendererConfig) -> None:
        super().__init__()
        k = cfg.num_kp
        in_channels = (k + 1) * (cfg.motion_compress + 1)
        self.hourglass = Hourglass3d(cfg.motion_expansion, in_channels, cfg.motion_levels, cfg.motion_max_features)
        self.mask = nn.Conv3d(self.hourglass.out_channels, k + 1, 7, padding=3)
        self.compress = nn.Conv3d(cfg.gen_reshape_channel, cfg.motion_compress, 1)
        self.norm = nn.BatchNorm3d(cfg.motion_compress)
        self.occlusion = nn.Conv2d(self.hourglass.out_channels * cfg.gen_reshape_depth, 1, 7, padding=3)
        self.num_kp = k

    def forward(
        self, feature: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the deformation grid (b, d, h, w, 3) and the occlusion map (b, 1, h, w)."""
        b, _, d, h, w = feature.shape
        k = self.num_kp
        feature = F.relu(self.norm(self.compress(feature)))
        identity = coordinate_grid_3d(d, h, w, like=feature)[None, None]  # (1, 1, d, h, w, 3)
        to_source = identity - kp_driving.view(b, k, 1, 1, 1, 3) + kp_source.view(b, k, 1, 1, 1, 3)
        motions = torch.cat([identity.expand(b, 1, d, h, w, 3), to_source], dim=1)  # (b, k+1, d, h, w, 3)

        c = feature.shape[1]
        repeated = feature.unsqueeze(1).expand(b, k + 1, c, d, h, w).reshape(b * (k + 1), c, d, h, w)
        warped = F.grid_sample(repeated, motions.reshape(b * (k + 1), d, h, w, 3), align_corners=False)
        warped = warped.view(b, k + 1, c, d, h, w)

        spatial = (d, h, w)
        heat = gaussian_heatmaps(kp_driving, spatial, KP_VARIANCE) - gaussian_heatmaps(kp_source, spatial, KP_VARIANCE)
        heat = torch.cat([heat.new_zeros(b, 1, d, h, w), heat], dim=1).unsqueeze(2)

        prediction = self.hourglass(torch.cat([heat, warped], dim=2).view(b, -1, d, h, w))
        mask = F.softmax(self.mask(prediction), dim=1)
        mask = torch.where(mask < 1e-3, torch.zeros_like(mask), mask).unsqueeze(2)  # drop negligible weights
        deformation = (motions.permute(0, 1, 5, 2, 3, 4) * mask).sum(dim=1).permute(0, 2, 3, 4, 1)
        occlusion = torch.sigmoid(self.occlusion(prediction.reshape(b, -1, h, w)))
        return deformation, occlusion


class SPADEDecoder(nn.Module):
    def __init__(self, cfg: RendererConfig) -> None:
        super().__init__()
        ic, oc, hid = cfg.decoder_in_channels, cfg.decoder_out_channels, cfg.decoder_hidden
        self.fc = nn.Conv2d(ic, 2 * ic, 3, padding=1)
        self.middle_count = cfg.decoder_middle_blocks
        for i in range(self.middle_count):
            setattr(self, f"G_middle_{i}", SPADEResidual(2 * ic, 2 * ic, ic, hid))
        self.up_0 = SPADEResidual(2 * ic, ic, ic, hid)
        self.up_1 = SPADEResidual(ic, oc, ic, hid)
        self.conv_img = nn.Conv2d(oc, 3, 3, padding=1)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        x = self.fc(feature)
        for i in range(self.middle_count):
            x = getattr(self, f"G_middle_{i}")(x, feature)
        x = self.up_0(F.interpolate(x, scale_factor=2), feature)
        x = self.up_1(F.interpolate(x, scale_factor=2), feature)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 0.2)))


class RenderGenerator(nn.Module):
    """(source image, source keypoints, driving keypoints) -> image in [0, 1]."""

    def __init__(self, cfg: RendererConfig) -> None:
        super().__init__()
        e = cfg.gen_expansion
        self.dense_motion_network = DenseMotion(cfg)
        self.first = ConvBlock2d(cfg.image_channel, e)
        widths = [min(cfg.gen_max_features, e * 2**i) for i in range(cfg.gen_down_blocks + 1)]
        self.down_blocks = nn.ModuleList(Down2d(widths[i], widths[i + 1]) for i in range(cfg.gen_down_blocks))
        self.second = nn.Conv2d(widths[-1], cfg.gen_max_features, 1)
        self.resblocks_3d = nn.Sequential()
        for i in range(cfg.gen_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", PreActResidual3d(cfg.gen_reshape_channel))
        out = cfg.decoder_in_channels
        self.third = ConvBlock2d(cfg.gen_max_features, out, leaky=True)
        self.fourth = nn.Conv2d(out, out, 1)
        self.decoder = SPADEDecoder(cfg)
        self.reshape = (cfg.gen_reshape_channel, cfg.gen_reshape_depth)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """The source's 3D feature volume; computed once per video."""
        x = self.first(image)
        for block in self.down_blocks:
            x = block(x)
        x = self.second(x)
        b, _, h, w = x.shape
        return self.resblocks_3d(x.view(b, self.reshape[0], self.reshape[1], h, w))

    def render(self, volume: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor) -> torch.Tensor:
        deformation, occlusion = self.dense_motion_network(volume, kp_driving, kp_source)
        warped = F.grid_sample(volume, deformation, align_corners=False)
        b, c, d, h, w = warped.shape
        x = self.fourth(self.third(warped.reshape(b, c * d, h, w)))
        if x.shape[2:] != occlusion.shape[2:]:
            occlusion = F.interpolate(occlusion, size=x.shape[2:], mode="bilinear")
        return self.decoder(x * occlusion)

    def forward(self, image: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor) -> torch.Tensor:
        return self.render(self.encode(image), kp_driving, kp_source)
