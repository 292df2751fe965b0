"""Speech -> per-frame face mesh and head pose, as the reference's audio-driven script does it.

* The waveform (16 kHz mono) is normalised to zero mean and unit variance (wav2vec2's feature extractor).
* audio2mesh predicts, for every video frame, offsets of the 468 vertices from the reference face's mesh.
* audio2pose decodes head poses in 5-second chunks (its positional table is finite and it was trained on
  short clips): chunks of 150 frames at 30 fps, the remainder joined to the last full chunk, a speaking
  "identity" (one of 100 learned styles) for the whole clip; the angles are halved and the sequence is
  smoothed with a centred 7-frame moving average. The reference crashes on clips shorter than one chunk
  (it indexes the second-to-last chunk); we decode those as one chunk.
"""

from __future__ import annotations

import numpy as np
import torch

from portrait_studio.talk.aniportrait.audio_models import Audio2Mesh, Audio2Pose

FPS = 30  # the audio models were trained at 30 video frames per second
SAMPLE_RATE = 16_000
POSE_CHUNK_SECONDS = 5
ANGLE_SCALE = 0.5
SMOOTH_WINDOW = 7


def frame_count(samples: int) -> int:
    """Video frames for ``samples`` of audio (the reference: int(seconds * fps))."""
    return int(samples / SAMPLE_RATE * FPS)


def normalise(samples: np.ndarray) -> torch.Tensor:
    x = np.asarray(samples, dtype=np.float32)
    return torch.from_numpy((x - x.mean()) / np.sqrt(x.var() + 1e-7))[None]


@torch.no_grad()
def mesh_sequence(model: Audio2Mesh, audio: torch.Tensor, frames: int, reference: np.ndarray,
                  scale: float = 1.0) -> np.ndarray:
    """(f, 468, 3): the reference mesh plus the predicted offsets of every frame (times ``scale``: >1 livelier)."""
    parameter = next(model.parameters())
    offsets = model(audio.to(parameter.device, parameter.dtype), frames)[0].float().cpu().numpy()
    return offsets.reshape(frames, -1, 3) * scale + reference[None]


def pose_chunks(frames: int, chunk: int = POSE_CHUNK_SECONDS * FPS) -> list[tuple[int, int]]:
    """(first frame, frame count) of each chunk; the remainder joins the last full chunk."""
    if frames <= chunk:
        return [(0, frames)]
    starts = list(range(0, frames - frames % chunk, chunk))
    bounds = [(s, chunk) for s in starts]
    first, length = bounds[-1]
    bounds[-1] = (first, frames - first)
    return bounds


def smooth(poses: np.ndarray, window: int = SMOOTH_WINDOW) -> np.ndarray:
    """Centred moving average; the window shrinks at the ends."""
    out = np.empty_like(poses)
    for i in range(len(poses)):
        out[i] = poses[max(0, i - window // 2): i + window // 2 + 1].mean(0)
    return out


@torch.no_grad()
def pose_sequence(model: Audio2Pose, audio: torch.Tensor, frames: int, style: int) -> np.ndarray:
    """(f, 6): Euler angles (degrees) and translation per frame."""
    parameter = next(model.parameters())
    identity = torch.tensor([style], dtype=torch.long, device=parameter.device)
    per_frame = SAMPLE_RATE / FPS
    pieces = []
    for first, length in pose_chunks(frames):
        start = int(round(first * per_frame))
        end = audio.shape[1] if first + length == frames else int(round((first + length) * per_frame))
        chunk = audio[:, start:end].to(parameter.device, parameter.dtype)
        pose = model(chunk, length, identity)[0].float().cpu().numpy()
        pose[:, :3] *= ANGLE_SCALE
        pieces.append(pose)
    return smooth(np.concatenate(pieces).astype(np.float64))
