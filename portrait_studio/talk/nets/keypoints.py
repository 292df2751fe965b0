"""Canonical 3D keypoints of the source face, the mapping from 3DMM coefficients to head pose and
keypoint offsets, and the rigid transform that combines them (the face-vid2vid formulation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from portrait_studio.talk.config import RendererConfig
from portrait_studio.talk.nets.layers import Down2d, GaussianDownsample, Up3d, coordinate_grid_3d


class KeypointDetector(nn.Module):
    """Image -> ``num_kp`` canonical keypoints in [-1, 1]^3 (soft-argmax over 3D heatmaps)."""

    def __init__(self, cfg: RendererConfig) -> None:
        super().__init__()
        e, cap, levels = cfg.kp_expansion, cfg.kp_max_features, cfg.kp_levels

        def width(level: int) -> int:
            return min(cap, e * 2**level)

        self.predictor = nn.Module()
        self.predictor.down_blocks = nn.Sequential()
        for i in range(levels):
            cin = cfg.image_channel if i == 0 else width(i)
            self.predictor.down_blocks.add_module(f"down{i}", Down2d(cin, width(i + 1)))
        self.predictor.conv = nn.Conv2d(width(levels), cfg.kp_reshape_channel, 1)
        self.predictor.up_blocks = nn.Sequential()
        for i in range(levels):
            self.predictor.up_blocks.add_module(f"up{i}", Up3d(width(levels - i), width(levels - i - 1)))
        self.kp = nn.Conv3d(width(0), cfg.num_kp, 3, padding=1)
        if cfg.kp_scale != 1:
            self.down = GaussianDownsample(cfg.image_channel, cfg.kp_scale)
        self.scale = cfg.kp_scale
        self.depth = cfg.kp_reshape_depth
        self.temperature = cfg.kp_temperature

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.down(image) if self.scale != 1 else image
        x = self.predictor.conv(self.predictor.down_blocks(x))
        b, c, h, w = x.shape
        x = self.predictor.up_blocks(x.view(b, c // self.depth, self.depth, h, w))
        logits = self.kp(x)
        b, k, d, h, w = logits.shape
        heat = F.softmax(logits.view(b, k, -1) / self.temperature, dim=2).view(b, k, d, h, w)
        grid = coordinate_grid_3d(d, h, w, like=heat)
        return (heat.unsqueeze(-1) * grid).sum(dim=(2, 3, 4))  # (b, k, 3)


class MappingNet(nn.Module):
    """A window of 3DMM coefficients (b, coeffs, 27) -> yaw/pitch/roll bins, translation, keypoint deltas."""

    def __init__(self, coeff_nc: int, descriptor: int, layers: int, num_kp: int, num_bins: int) -> None:
        super().__init__()
        self.first = nn.Sequential(nn.Conv1d(coeff_nc, descriptor, 7))
        self.layers = layers
        for i in range(layers):
            block = nn.Sequential(nn.LeakyReLU(0.1), nn.Conv1d(descriptor, descriptor, 3, dilation=3))
            setattr(self, f"encoder{i}", block)
        self.fc_roll = nn.Linear(descriptor, num_bins)
        self.fc_pitch = nn.Linear(descriptor, num_bins)
        self.fc_yaw = nn.Linear(descriptor, num_bins)
        self.fc_t = nn.Linear(descriptor, 3)
        self.fc_exp = nn.Linear(descriptor, 3 * num_kp)

    def forward(self, window: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.first(window)
        for i in range(self.layers):
            # each dilated conv trims 3 steps per side; the residual is trimmed to match
            x = getattr(self, f"encoder{i}")(x) + x[:, :, 3:-3]
        x = x.mean(dim=2)
        return {
            "yaw": self.fc_yaw(x), "pitch": self.fc_pitch(x), "roll": self.fc_roll(x),
            "t": self.fc_t(x), "exp": self.fc_exp(x),
        }

    @staticmethod
    def sizes_from_state_dict(state: dict[str, torch.Tensor]) -> dict[str, int]:
        """Constructor arguments read from a checkpoint's shapes (the two published files differ)."""
        layers = sum(1 for k in state if k.startswith("encoder") and k.endswith(".1.weight"))
        return {
            "coeff_nc": int(state["first.0.weight"].shape[1]),
            "descriptor": int(state["first.0.weight"].shape[0]),
            "layers": layers,
            "num_kp": int(state["fc_exp.weight"].shape[0]) // 3,
            "num_bins": int(state["fc_yaw.weight"].shape[0]),
        }


def bins_to_degrees(logits: torch.Tensor) -> torch.Tensor:
    """Expected angle of 66 three-degree bins spanning [-99, 99)."""
    probs = F.softmax(logits, dim=1)
    idx = torch.arange(logits.shape[1], dtype=logits.dtype, device=logits.device)
    return (probs * idx).sum(1) * 3 - 99


def rotation_matrix(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(b,) degrees -> (b, 3, 3) = R_pitch(x) @ R_yaw(y) @ R_roll(z).

    The published weights were trained with pi approximated as 3.14; we keep that constant.
    """
    to_rad = 3.14 / 180
    p, y, r = pitch * to_rad, yaw * to_rad, roll * to_rad
    one, zero = torch.ones_like(p), torch.zeros_like(p)

    def mat(*rows: torch.Tensor) -> torch.Tensor:
        return torch.stack(rows, dim=1).view(-1, 3, 3)

    rx = mat(one, zero, zero, zero, p.cos(), -p.sin(), zero, p.sin(), p.cos())
    ry = mat(y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos())
    rz = mat(r.cos(), -r.sin(), zero, r.sin(), r.cos(), zero, zero, zero, one)
    return rx @ ry @ rz


def transform_keypoints(canonical: torch.Tensor, motion: dict[str, torch.Tensor]) -> torch.Tensor:
    """Rotate canonical keypoints, shift them vertically, add expression deltas -> (b, k, 3).

    Only the y translation is used (x and z are zeroed), as in the published inference.
    ``motion`` may carry ``yaw_in``/``pitch_in``/``roll_in`` in degrees to override the predicted angles.
    """
    yaw = motion.get("yaw_in", bins_to_degrees(motion["yaw"]))
    pitch = motion.get("pitch_in", bins_to_degrees(motion["pitch"]))
    roll = motion.get("roll_in", bins_to_degrees(motion["roll"]))
    rot = rotation_matrix(yaw, pitch, roll)
    rotated = torch.einsum("bmp,bkp->bkm", rot, canonical)
    t = motion["t"]
    shift = torch.stack([torch.zeros_like(t[:, 1]), t[:, 1], torch.zeros_like(t[:, 1])], dim=1)
    return rotated + shift[:, None, :] + motion["exp"].view(t.shape[0], -1, 3)


__all__ = ["KeypointDetector", "MappingNet", "rotation_matrix", "transform_keypoints", "bins_to_degrees"]
