"""One input photo's journey through the face pipeline: what we found, what we decided, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from portrait_studio.faces.quality import QualityScores

KEPT = "kept"
REJECTED = "rejected"
PENDING = "pending"


@dataclass
class FaceEntry:
    path: Path
    index: int
    status: str = PENDING
    reason: str = ""
    warnings: list[str] = field(default_factory=list)
    # Measurements (None when the photo was rejected before they could be made).
    faces_found: int = 0
    face_px: int | None = None
    box: list[float] | None = None  # in the original photo's pixels
    landmarks: list[list[float]] | None = None
    roll: float | None = None
    yaw: float | None = None
    angle: float | None = None  # frontal score in [0, 1]
    scores: QualityScores | None = None
    similarity: float | None = None
    score: float | None = None
    rank: int | None = None
    restored: bool = False
    crop_name: str | None = None  # e.g. "01_selfie.png", relative to crops/ and masks/
    # In memory only (not in report.json).
    crop: Image.Image | None = field(default=None, repr=False)
    mask: Image.Image | None = field(default=None, repr=False)
    embedding: np.ndarray | None = field(default=None, repr=False)
    preview: Image.Image | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def quality(self) -> float | None:
        return None if self.scores is None else self.scores.overall

    @property
    def is_candidate(self) -> bool:
        return self.status == PENDING

    def reject(self, reason: str) -> None:
        self.status = REJECTED
        self.reason = reason

    def keep(self, reason: str) -> None:
        self.status = KEPT
        self.reason = reason

    def to_json(self) -> dict:
        def rounded(value: float | None, digits: int = 3) -> float | None:
            return None if value is None else round(float(value), digits)

        scores = self.scores
        return {
            "path": str(self.path),
            "status": self.status,
            "reason": self.reason,
            "score": rounded(self.score),
            "similarity": rounded(self.similarity),
            "quality": rounded(self.quality),
            "angle": rounded(self.angle),
            "rank": self.rank,
            "sharpness": rounded(scores.sharpness) if scores else None,
            "exposure": rounded(scores.exposure) if scores else None,
            "resolution": rounded(scores.resolution) if scores else None,
            "learned_quality": rounded(scores.learned) if scores else None,
            "faces_found": self.faces_found,
            "face_px": self.face_px,
            "yaw": rounded(self.yaw, 1),
            "roll": rounded(self.roll, 1),
            "box": [round(v, 1) for v in self.box] if self.box else None,
            "landmarks": [[round(x, 1), round(y, 1)] for x, y in self.landmarks] if self.landmarks else None,
            "restored": self.restored,
            "crop": f"crops/{self.crop_name}" if self.crop_name else None,
            "mask": f"masks/{self.crop_name}" if self.crop_name else None,
            "warnings": list(self.warnings),
        }
