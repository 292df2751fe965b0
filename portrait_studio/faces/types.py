"""Plain data shared by the face backends and the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image


@dataclass
class DetectedFace:
    """One face in an image, in that image's pixel coordinates.

    ``landmarks5`` are (x, y) rows in the order of the FFHQ template: left eye, right eye (as seen in the
    image), nose tip, left mouth corner, right mouth corner. ``points`` holds a denser outline (dlib's 68
    points) when the backend has one; it lets us draw a face mask without a parsing model.
    """

    box: np.ndarray  # [x0, y0, x1, y1], float
    score: float
    landmarks5: np.ndarray  # (5, 2) float
    points: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def size_px(self) -> int:
        """The face's size in pixels as a person would say it: the box side."""
        return int(round(min(self.width, self.height)))

    def scaled(self, factor: float) -> DetectedFace:
        """The same face in an image resized by ``factor``."""
        return DetectedFace(
            self.box * factor,
            self.score,
            self.landmarks5 * factor,
            None if self.points is None else self.points * factor,
            dict(self.extra),
        )


class FaceBackend(Protocol):
    """What the pipeline needs from a face analysis backend (dlib, facexlib)."""

    name: str
    #: Calibrated similarity (see :meth:`similarity`) below which two faces are different people.
    same_person_threshold: float
    random_weights: bool

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """All plausible faces in an HxWx3 uint8 RGB array, with 5 landmarks each."""
        ...

    def embed(self, rgb: np.ndarray, face: DetectedFace) -> np.ndarray:
        """A unit-norm float32 identity embedding of ``face``."""
        ...

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        """Identity similarity of two embeddings, calibrated to [0, 1] (1 = the same photo)."""
        ...

    def quality(self, aligned: Image.Image) -> float | None:
        """A learned quality score in [0, 1] for an aligned crop, or None when the backend has none."""
        ...

    def face_mask(self, aligned: Image.Image) -> Image.Image | None:
        """A parsing-based face mask (L mode) for an aligned crop, or None (the pipeline uses landmarks)."""
        ...
