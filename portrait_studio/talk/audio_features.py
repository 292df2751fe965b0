"""Mel features as the published networks were trained on (wav2lip's recipe), in numpy.

16 kHz mono -> pre-emphasis 0.97 -> |STFT| (n_fft 800, hop 200, periodic Hann 800, centred with
zero padding) -> 80 Slaney-normalised mel bands 55-7600 Hz -> dB (floor -100 dB, minus 20 dB)
-> symmetric clip to [-4, 4]. That is 80 mel frames per second; each 25 fps video frame sees a
16-frame window starting two video frames earlier.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from portrait_studio.talk.config import FPS, MEL_WINDOW, SAMPLE_RATE

N_FFT = 800
HOP = 200
N_MELS = 80
FMIN, FMAX = 55.0, 7600.0
PREEMPHASIS = 0.97
MIN_LEVEL_DB = -100.0
REF_LEVEL_DB = 20.0
MAX_ABS = 4.0
MEL_FPS = SAMPLE_RATE / HOP  # 80
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640

# Slaney's mel scale: linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _F_SP
    log = _MIN_LOG_MEL + np.log(np.maximum(hz, 1e-10) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, log, linear)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * _F_SP
    log = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log, linear)


@lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """(80, 401) triangular filters, each scaled to unit area (Slaney normalisation)."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(FMIN), hz_to_mel(FMAX), N_MELS + 2))
    widths = np.diff(edges)
    distance = edges[:, None] - fft_freqs[None, :]
    rising = -distance[:-2] / widths[:-1, None]
    falling = distance[2:] / widths[1:, None]
    bank = np.maximum(0, np.minimum(rising, falling))
    bank *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return bank.astype(np.float32)


def _hann_periodic(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def stft_magnitude(signal: np.ndarray) -> np.ndarray:
    """(401, frames) magnitudes; frames = 1 + len // 200."""
    padded = np.pad(signal.astype(np.float32), N_FFT // 2, mode="constant")
    count = 1 + (len(padded) - N_FFT) // HOP
    starts = np.arange(count) * HOP
    frames = padded[starts[:, None] + np.arange(N_FFT)[None, :]] * _hann_periodic(N_FFT)
    return np.abs(np.fft.rfft(frames, n=N_FFT, axis=1)).T.astype(np.float32)


def melspectrogram(wav: np.ndarray) -> np.ndarray:
    """(80, mel_frames) normalised log-mel spectrogram of 16 kHz mono float audio."""
    if wav.ndim != 1:
        raise ValueError("melspectrogram expects mono audio (1-D array)")
    emphasized = np.empty_like(wav, dtype=np.float64)
    if wav.size:
        emphasized[0] = wav[0]
        emphasized[1:] = wav[1:] - PREEMPHASIS * wav[:-1]
    mel = mel_filterbank() @ stft_magnitude(emphasized)
    db = 20 * np.log10(np.maximum(10 ** (MIN_LEVEL_DB / 20), mel)) - REF_LEVEL_DB
    normalised = 2 * MAX_ABS * (db - MIN_LEVEL_DB) / -MIN_LEVEL_DB - MAX_ABS
    return np.clip(normalised, -MAX_ABS, MAX_ABS).astype(np.float32)


def frame_count(num_samples: int) -> int:
    """Whole 25 fps video frames covered by the audio (the remainder is dropped)."""
    return int(num_samples / (SAMPLE_RATE / FPS))


def trim_to_frames(wav: np.ndarray) -> tuple[np.ndarray, int]:
    """Cut the audio to a whole number of video frames; return (audio, frames)."""
    frames = frame_count(len(wav))
    return wav[: int(frames * SAMPLE_RATE / FPS)], frames


def frame_windows(mel: np.ndarray, frames: int) -> np.ndarray:
    """(frames, 80, 16): for video frame i the mel frames from 3.2 * (i - 2), clamped at the edges.

    The start index is truncated toward zero (not floored), matching the training code.
    """
    total = mel.shape[1]
    starts = np.trunc(MEL_FPS * (np.arange(frames) - 2) / FPS).astype(np.int64)
    index = np.clip(starts[:, None] + np.arange(MEL_WINDOW)[None, :], 0, total - 1)
    return np.ascontiguousarray(mel[:, index].transpose(1, 0, 2))


def audio_features(wav: np.ndarray) -> tuple[np.ndarray, int]:
    """16 kHz mono float audio -> ((frames, 80, 16) mel windows, frames)."""
    wav, frames = trim_to_frames(wav)
    return frame_windows(melspectrogram(wav), frames), frames
