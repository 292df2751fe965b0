"""Decode user audio (wav, mp3, m4a, ogg, flac, ...) to 16 kHz mono float32 through ffmpeg.

ffmpeg is the binary shipped in the imageio-ffmpeg wheel, called with an argument list (never a
shell string). Every failure a user can cause ends as an :class:`InputError` naming the file.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from portrait_studio.errors import InputError

SAMPLE_RATE = 16_000
MIN_SECONDS = 0.5
# Peak below this (about -60 dBFS) counts as silence: there is nothing to lip-sync to.
SILENCE_PEAK = 1e-3


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def decode_audio(
    path: Path, max_seconds: float, sample_rate: int = SAMPLE_RATE, min_seconds: float = MIN_SECONDS
) -> DecodedAudio:
    """Decode, downmix and resample ``path``; reject empty, silent, too short, too long or corrupt audio."""
    import imageio_ffmpeg

    path = Path(path)
    name = path.name
    if not path.is_file():
        raise InputError(f"Audio file {name} not found.")
    if path.stat().st_size == 0:
        raise InputError(f"Audio file {name} is empty (0 bytes).")
    # Decode a little past the cap so "too long" is detected without decoding hours of audio.
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error", "-i", str(path),
        "-t", f"{max_seconds + 1.0:.3f}", "-vn", "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "-",
    ]
    try:
        run = subprocess.run(command, capture_output=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        raise InputError(f"Decoding audio file {name} took too long; convert it to WAV and try again.") from None
    samples = np.frombuffer(run.stdout, dtype="<f4").astype(np.float32)
    if run.returncode != 0 or samples.size == 0:
        detail = run.stderr.decode(errors="replace").strip().splitlines()
        reason = detail[-1][:160] if detail else "no audio stream"
        raise InputError(
            f"Could not read audio from {name} ({reason}). Use a speech recording in WAV, MP3, M4A, OGG or FLAC."
        )
    duration = samples.size / sample_rate
    if duration > max_seconds:
        raise InputError(
            f"Audio file {name} is longer than the limit of {max_seconds:g} seconds. Trim it, or raise the "
            "limit with PORTRAIT_STUDIO_MAX_AUDIO_SECONDS."
        )
    if duration < min_seconds:
        raise InputError(f"Audio file {name} is only {duration:.2f} s long; use at least {min_seconds:g} s of speech.")
    samples = np.nan_to_num(np.clip(samples, -1.0, 1.0))
    if float(np.abs(samples).max()) < SILENCE_PEAK:
        raise InputError(f"Audio file {name} is silent; use a recording with audible speech.")
    return DecodedAudio(samples, sample_rate)


def write_wav(samples: np.ndarray, path: Path, sample_rate: int = SAMPLE_RATE) -> Path:
    """16-bit PCM mono WAV, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".wav")
    os.close(fd)
    try:
        with wave.open(tmp, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(sample_rate)
            out.writeframes(pcm.tobytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
