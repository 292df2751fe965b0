"""Audio -> per-frame 3DMM motion coefficients: expression (ExpNet), head pose (PoseVAE), blinks.

Coefficient layout per frame (70): 64 expression, 3 angles, 3 translation; the full-image mapping
network also gets the 3 crop parameters of the source (73).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.signal import savgol_filter

from portrait_studio.talk.config import EXP_DIM, SEMANTIC_RADIUS
from portrait_studio.talk.nets.audio_nets import ExpressionNet, PoseNet

EXP_CHUNK = 10  # frames per ExpNet call (the published inference batches by 10)
POSE_SMOOTH_WINDOW = 13


def blink_ratios(num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(num_frames, 1) eye-closing ratios: short 5-frame blinks at random gaps; none for very short clips."""
    ratio = np.zeros((num_frames, 1), dtype=np.float32)
    if num_frames <= 20:
        return ratio
    frame = 0
    while True:
        gap = int(rng.integers(min(10, num_frames), max(min(num_frames // 2, 70), min(10, num_frames) + 1)))
        if frame + gap + 5 > num_frames - 1:
            return ratio
        ratio[frame + gap: frame + gap + 5, 0] = (0.5, 0.9, 1.0, 0.9, 0.5)
        frame += gap + 5


@torch.no_grad()
def predict_expression(
    net: ExpressionNet, mels: torch.Tensor, source_exp: torch.Tensor, blink: torch.Tensor
) -> torch.Tensor:
    """mels (1, t, 1, 80, 16), source_exp (1, 64), blink (1, t, 1) -> (1, t, 64)."""
    t = mels.shape[1]
    ref = source_exp[:, None, :EXP_DIM].expand(1, t, EXP_DIM)
    chunks = [
        net(mels[:, i:i + EXP_CHUNK], ref[:, i:i + EXP_CHUNK], blink[:, i:i + EXP_CHUNK])
        for i in range(0, t, EXP_CHUNK)
    ]
    return torch.cat(chunks, dim=1)


@torch.no_grad()
def predict_pose(
    net: PoseNet, mels: torch.Tensor, ref_pose: torch.Tensor, style: int, generator: torch.Generator
) -> torch.Tensor:
    """Head pose for every frame: (1, t, 6) = source pose + generated motion (frame 0 = source).

    The decoder makes ``seq_len`` frames at a time from a fresh latent; a last partial chunk is
    decoded from the final ``seq_len`` mel windows (left-padded when the clip is shorter) and
    only its tail is kept.
    """
    t = mels.shape[1]
    seq = net.seq_len
    style_t = torch.tensor([style], dtype=torch.long, device=mels.device)
    motion = [torch.zeros(1, 1, ref_pose.shape[-1], dtype=ref_pose.dtype, device=ref_pose.device)]
    rest = mels[:, 1:]
    full, remainder = divmod(t - 1, seq)

    def decode(window: torch.Tensor) -> torch.Tensor:
        z = torch.randn(1, net.latent_size, generator=generator).to(mels.device)
        emb = net.encode_audio(window)
        if emb.shape[1] < seq:
            emb = torch.cat([emb[:, :1].expand(1, seq - emb.shape[1], emb.shape[2]), emb], dim=1)
        return net.decode(z, style_t, ref_pose, emb)

    for i in range(full):
        motion.append(decode(rest[:, i * seq:(i + 1) * seq]))
    if remainder:
        motion.append(decode(rest[:, -seq:])[:, -remainder:])
    return ref_pose[:, None, :] + torch.cat(motion, dim=1)


def smooth_pose(pose: np.ndarray) -> np.ndarray:
    """Savitzky-Golay (order 2) along time: window 13, or the largest odd window a short clip allows."""
    length = pose.shape[0]
    window = POSE_SMOOTH_WINDOW if length >= POSE_SMOOTH_WINDOW else int((length - 1) / 2) * 2 + 1
    if window <= 2:  # too short to fit a quadratic: nothing to smooth
        return pose
    return savgol_filter(pose, window, 2, axis=0)


def semantic_windows(coeffs: np.ndarray) -> np.ndarray:
    """(t, c) -> (t, c, 27): each frame's coefficients with 13 neighbours each side, edges clamped."""
    t = coeffs.shape[0]
    offsets = np.arange(-SEMANTIC_RADIUS, SEMANTIC_RADIUS + 1)
    index = np.clip(np.arange(t)[:, None] + offsets[None, :], 0, t - 1)
    return coeffs[index].transpose(0, 2, 1).astype(np.float32)


def source_window(coeffs: np.ndarray) -> np.ndarray:
    """(c,) -> (c, 27): the still source repeated over the window."""
    return np.repeat(coeffs[:, None], 2 * SEMANTIC_RADIUS + 1, axis=1).astype(np.float32)
