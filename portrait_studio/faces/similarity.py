"""Face similarity to a prepared identity: used to validate training checkpoints and rank Stylize outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from portrait_studio.config import Settings
from portrait_studio.errors import InputError
from portrait_studio.faces.align import landmarks_plausible
from portrait_studio.faces.analyze import detect_scaled
from portrait_studio.faces.backends import get_face_backend
from portrait_studio.faces.types import FaceBackend

REFERENCE_EMBEDDING = "reference_embedding.npy"
REPORT_NAME = "report.json"


class FaceScorer:
    """``score(image)``: how much the largest face in ``image`` looks like the reference, in [0, 1].

    0 when no face is found. Uses the backend's calibrated similarity (embeddings from different backends
    are not comparable: a prepared folder records which backend made its embedding).
    """

    def __init__(self, backend: FaceBackend, reference_embedding: np.ndarray) -> None:
        reference = np.asarray(reference_embedding, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(reference))
        if not np.isfinite(reference).all() or norm == 0:
            raise InputError("The reference face embedding is empty or damaged: prepare the photos again.")
        self.backend = backend
        self.reference = reference / norm

    def score(self, image: Image.Image) -> float:
        rgb = np.asarray(image.convert("RGB"))
        faces = [f for f in detect_scaled(self.backend, rgb) if landmarks_plausible(f.box, f.landmarks5)]
        if not faces:
            return 0.0
        largest = max(faces, key=lambda f: f.area)
        embedding = self.backend.embed(rgb, largest)
        if embedding.shape != self.reference.shape:
            raise InputError(
                f"The reference embedding has {self.reference.size} values but the {self.backend.name} backend "
                f"makes {embedding.size}: it was prepared with another face backend. Prepare the photos again."
            )
        return float(np.clip(self.backend.similarity(self.reference, embedding), 0.0, 1.0))

    def score_many(self, images: list[Image.Image]) -> list[float]:
        return [self.score(image) for image in images]

    @classmethod
    def from_prepared_dir(cls, folder: Path, settings: Settings) -> FaceScorer:
        """A scorer for a folder written by ``prepare_faces``, with the backend that wrote it."""
        import json

        folder = Path(folder)
        embedding_path = folder / REFERENCE_EMBEDDING
        if not embedding_path.is_file():
            raise InputError(f"{folder} has no {REFERENCE_EMBEDDING}: run face preparation on your photos first.")
        backend_name = settings.face_backend
        report_path = folder / REPORT_NAME
        if report_path.is_file():
            try:
                backend_name = json.loads(report_path.read_text()).get("backend", backend_name)
            except (OSError, ValueError):
                pass
        if backend_name in ("dlib", "facexlib"):
            settings = settings.replace(face_backend=backend_name)
        try:
            embedding = np.load(embedding_path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"{embedding_path} could not be read ({exc}): prepare the photos again.") from exc
        return cls(get_face_backend(settings), embedding)
