"""Audio -> motion networks: expression coefficients (ExpNet) and head-pose motion (PoseVAE decoder).

Both read 80 x 16 mel windows through the same wav2lip-style encoder layout.
"""

from __future__ import annotations

import torch
from torch import nn

from portrait_studio.talk.config import EXP_DIM, POSE_DIM, AudioNetConfig


class ConvBN(nn.Module):
    """conv -> batch norm (-> + input) -> relu; stored as ``conv_block.0`` / ``conv_block.1``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int | tuple[int, int], padding: int,
                 residual: bool = False) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.BatchNorm2d(cout))
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        return torch.relu(out + x if self.residual else out)


def mel_encoder(channels: tuple[int, ...]) -> nn.Sequential:
    """(n, 1, 80, 16) mel windows -> (n, channels[-1], 1, 1)."""
    c1, c2, c3, c4, c5 = channels
    return nn.Sequential(
        ConvBN(1, c1, 3, 1, 1), ConvBN(c1, c1, 3, 1, 1, True), ConvBN(c1, c1, 3, 1, 1, True),
        ConvBN(c1, c2, 3, (3, 1), 1), ConvBN(c2, c2, 3, 1, 1, True), ConvBN(c2, c2, 3, 1, 1, True),
        ConvBN(c2, c3, 3, 3, 1), ConvBN(c3, c3, 3, 1, 1, True), ConvBN(c3, c3, 3, 1, 1, True),
        ConvBN(c3, c4, 3, (3, 2), 1), ConvBN(c4, c4, 3, 1, 1, True),
        ConvBN(c4, c5, 3, 1, 0), ConvBN(c5, c5, 1, 1, 0),
    )


class ExpressionNet(nn.Module):
    """Mel windows + the source's expression + a blink ratio -> 64 expression coefficients per frame."""

    def __init__(self, cfg: AudioNetConfig) -> None:
        super().__init__()
        self.audio_encoder = mel_encoder(cfg.encoder_channels)
        self.mapping1 = nn.Linear(cfg.encoder_channels[-1] + EXP_DIM + 1, EXP_DIM)

    def forward(self, mels: torch.Tensor, ref_exp: torch.Tensor, blink: torch.Tensor) -> torch.Tensor:
        """mels (b, t, 1, 80, 16), ref_exp (b, t, 64), blink (b, t, 1) -> (b, t, 64)."""
        b, t = ref_exp.shape[:2]
        audio = self.audio_encoder(mels.reshape(b * t, 1, *mels.shape[-2:])).view(b * t, -1)
        x = torch.cat([audio, ref_exp.reshape(b * t, -1), blink.reshape(b * t, -1)], dim=1)
        return self.mapping1(x).view(b, t, -1)


class _ResidualConv(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int | tuple[int, int]) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, 3, stride, 1),
            nn.BatchNorm2d(cout), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1),
        )
        self.conv_skip = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_block(x) + self.conv_skip(x)


class _Upsample(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.upsample = nn.ConvTranspose2d(cin, cout, (2, 1), (2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(x)


class ResUnet(nn.Module):
    """A residual U-Net over (time, 6) pose maps; halves only the time axis."""

    def __init__(self, filters: tuple[int, int, int, int]) -> None:
        super().__init__()
        f0, f1, f2, f3 = filters
        self.input_layer = nn.Sequential(
            nn.Conv2d(1, f0, 3, padding=1), nn.BatchNorm2d(f0), nn.ReLU(), nn.Conv2d(f0, f0, 3, padding=1)
        )
        self.input_skip = nn.Sequential(nn.Conv2d(1, f0, 3, padding=1))
        self.residual_conv_1 = _ResidualConv(f0, f1, (2, 1))
        self.residual_conv_2 = _ResidualConv(f1, f2, (2, 1))
        self.bridge = _ResidualConv(f2, f3, (2, 1))
        self.upsample_1 = _Upsample(f3, f3)
        self.up_residual_conv1 = _ResidualConv(f3 + f2, f2, 1)
        self.upsample_2 = _Upsample(f2, f2)
        self.up_residual_conv2 = _ResidualConv(f2 + f1, f1, 1)
        self.upsample_3 = _Upsample(f1, f1)
        self.up_residual_conv3 = _ResidualConv(f1 + f0, f0, 1)
        self.output_layer = nn.Sequential(nn.Conv2d(f0, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.input_layer(x) + self.input_skip(x)
        x2 = self.residual_conv_1(x1)
        x3 = self.residual_conv_2(x2)
        x4 = self.bridge(x3)
        x6 = self.up_residual_conv1(torch.cat([self.upsample_1(x4), x3], dim=1))
        x8 = self.up_residual_conv2(torch.cat([self.upsample_2(x6), x2], dim=1))
        x10 = self.up_residual_conv3(torch.cat([self.upsample_3(x8), x1], dim=1))
        return self.output_layer(x10)


class PoseDecoder(nn.Module):
    """CVAE decoder: (latent z, pose style, reference pose, audio) -> ``seq_len`` frames of pose motion."""

    def __init__(self, cfg: AudioNetConfig) -> None:
        super().__init__()
        self.seq_len = cfg.seq_len
        self.resunet = ResUnet(cfg.resunet_filters)
        self.MLP = nn.Sequential()
        sizes = [cfg.latent_size + cfg.seq_len * cfg.audio_emb_out + POSE_DIM, *cfg.decoder_layer_sizes]
        for i, (cin, cout) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            self.MLP.add_module(f"L{i}", nn.Linear(cin, cout))
            last = i == len(sizes) - 2
            self.MLP.add_module("sigmoid" if last else f"A{i}", nn.Sigmoid() if last else nn.ReLU())
        self.pose_linear = nn.Linear(POSE_DIM, POSE_DIM)
        self.linear_audio = nn.Linear(cfg.audio_emb_in, cfg.audio_emb_out)
        self.classbias = nn.Parameter(torch.zeros(cfg.num_classes, cfg.latent_size))

    def forward(
        self, z: torch.Tensor, style: torch.Tensor, ref_pose: torch.Tensor, audio_emb: torch.Tensor
    ) -> torch.Tensor:
        """z (b, latent), style (b,) long, ref_pose (b, 6), audio_emb (b, seq_len, 512) -> (b, seq_len, 6)."""
        b = z.shape[0]
        audio = self.linear_audio(audio_emb).reshape(b, -1)
        x = self.MLP(torch.cat([ref_pose, z + self.classbias[style], audio], dim=-1))
        pose = self.resunet(x.view(b, 1, self.seq_len, -1))
        return self.pose_linear(pose.squeeze(1))


class _EncoderHolder(nn.Module):
    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.audio_encoder = mel_encoder(channels)


class _CVAEHolder(nn.Module):
    def __init__(self, cfg: AudioNetConfig) -> None:
        super().__init__()
        self.decoder = PoseDecoder(cfg)


class PoseNet(nn.Module):
    """Inference part of the published ``audio2pose`` network (audio encoder + CVAE decoder).

    The checkpoint also holds the CVAE encoder (``netG.encoder.*``) and a discriminator
    (``netD_motion.*``), used only in training; :mod:`portrait_studio.talk.checkpoint` drops them.
    """

    TRAINING_ONLY_PREFIXES = ("netG.encoder.", "netD_motion.")

    def __init__(self, cfg: AudioNetConfig) -> None:
        super().__init__()
        self.audio_encoder = _EncoderHolder(cfg.encoder_channels)
        self.netG = _CVAEHolder(cfg)
        self.seq_len = cfg.seq_len
        self.latent_size = cfg.latent_size
        self.num_classes = cfg.num_classes

    def encode_audio(self, mels: torch.Tensor) -> torch.Tensor:
        """(b, t, 1, 80, 16) -> (b, t, 512)."""
        b, t = mels.shape[:2]
        emb = self.audio_encoder.audio_encoder(mels.reshape(b * t, 1, *mels.shape[-2:]))
        return emb.view(b, t, -1)

    def decode(
        self, z: torch.Tensor, style: torch.Tensor, ref_pose: torch.Tensor, audio_emb: torch.Tensor
    ) -> torch.Tensor:
        return self.netG.decoder(z, style, ref_pose, audio_emb)
