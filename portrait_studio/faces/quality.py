"""Image quality of an aligned face crop: sharpness, exposure and resolution, each in [0, 1].

Measured on the FFHQ-aligned crop (so every face is judged at the same scale) inside the inner face
region (eyes to chin), where blur and bad light hurt a likeness most.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

_ANALYSIS_SIZE = 256
# Inner face box at 256 px in the FFHQ layout: eyebrows to chin, cheek to cheek.
_INNER = (slice(90, 210), slice(70, 186))
# Laplacian variance is scored on a log scale between these: measured on grace_hopper's aligned crop,
# sharp 8600, 1.5 px Gaussian blur 1070, 3 px blur 170, 6 px blur 40.
_SHARPNESS_ZERO = 20.0
_SHARPNESS_FULL = 2000.0
# Resolution earns full marks while the crop enlarges the face at most this much.
_MAX_FULL_UPSCALE = 2.0

VERY_BLURRY = 0.2
BAD_EXPOSURE = 0.3


@dataclass
class QualityScores:
    sharpness: float
    exposure: float
    resolution: float
    learned: float | None = None  # hyperIQA (facexlib backend), when available
    brightness: float = 0.0  # mean luminance of the inner face, 0..255 (explains the exposure score)

    @property
    def overall(self) -> float:
        classic = self.sharpness * self.exposure * self.resolution
        if self.learned is None:
            return float(classic)
        return float(math.sqrt(max(classic, 0.0) * max(self.learned, 0.0)))


def _inner_gray(aligned: Image.Image) -> np.ndarray:
    small = aligned.convert("L").resize((_ANALYSIS_SIZE, _ANALYSIS_SIZE), Image.Resampling.BILINEAR)
    return np.asarray(small, dtype=np.float64)[_INNER]


def sharpness_raw(aligned: Image.Image) -> float:
    """Variance of the Laplacian over the inner face (higher = more fine detail)."""
    return float(cv2.Laplacian(_inner_gray(aligned), cv2.CV_64F, ksize=3).var())


def sharpness_score(raw: float) -> float:
    span = math.log10(_SHARPNESS_FULL) - math.log10(_SHARPNESS_ZERO)
    return float(min(1.0, max(0.0, (math.log10(max(raw, 1e-6)) - math.log10(_SHARPNESS_ZERO)) / span)))


def exposure_score(aligned: Image.Image) -> tuple[float, float]:
    """(score, mean brightness): 1 for a mid-grey face, falling for dark or blown-out faces."""
    gray = _inner_gray(aligned)
    mean = float(gray.mean())
    clipped = float(((gray < 8) | (gray > 247)).mean())
    score = math.exp(-(((mean - 125.0) / 75.0) ** 4)) * max(0.0, 1.0 - 3.0 * clipped)
    return score, mean


def resolution_score(upscale: float) -> float:
    """``upscale`` = crop pixels per source pixel; faces enlarged more than 2x lose detail."""
    if upscale <= _MAX_FULL_UPSCALE:
        return 1.0
    return float(math.sqrt(_MAX_FULL_UPSCALE / upscale))


def measure_quality(aligned: Image.Image, upscale: float, learned: float | None = None) -> QualityScores:
    exposure, brightness = exposure_score(aligned)
    return QualityScores(
        sharpness=sharpness_score(sharpness_raw(aligned)),
        exposure=exposure,
        resolution=resolution_score(upscale),
        learned=learned,
        brightness=brightness,
    )
