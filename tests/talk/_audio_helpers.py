"""Small WAV writers for audio edge cases."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np


def write_pcm_wav(path: Path, samples: np.ndarray, rate: int, sample_width: int = 2) -> Path:
    """``samples`` float in [-1, 1], shape (n,) or (n, channels); 8-bit WAV is unsigned, 16-bit signed."""
    data = samples if samples.ndim == 2 else samples[:, None]
    if sample_width == 1:
        pcm = np.clip(data * 127 + 128, 0, 255).astype(np.uint8)
    else:
        pcm = np.clip(data * 32767, -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(data.shape[1])
        out.setsampwidth(sample_width)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


def tone(seconds: float, rate: int, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
