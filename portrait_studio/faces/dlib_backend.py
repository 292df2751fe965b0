"""The offline face backend: dlib's HOG detector, 68-point landmarks and 128-d ResNet embedding.

The weights ship inside PyPI wheels (``dlib-bin`` and ``face-recognition-models``), so this backend works
with no network at all. Measured on grace_hopper: same-person distances 0.11-0.20, a different person 0.70;
dlib's documented decision threshold is 0.6.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from portrait_studio.errors import MissingWeightsError
from portrait_studio.faces.types import DetectedFace

_MODEL_FILES = {
    "landmarks": "shape_predictor_68_face_landmarks.dat",
    "embedding": "dlib_face_recognition_resnet_model_v1.dat",
}
# dlib's documented "same person" threshold is 0.6 on raw descriptors, whose norm we measured at ~1.40;
# on the unit-norm embeddings we return that is ~0.43. Similarity falls linearly to 0 at twice that.
DLIB_SAME_PERSON_DISTANCE = 0.43
_ZERO_SIMILARITY_DISTANCE = 0.86
# A secondary detection counts as a face only when its HOG score is at least this share of the best one:
# HOG fires weakly on patterned patches (the mission patch in skimage's astronaut scores 0.12 vs 1.16).
_RELATIVE_SCORE = 0.4

_load_lock = threading.Lock()
_models: dict[str, object] = {}


def dlib_models_dir() -> Path:
    """Where face-recognition-models keeps its .dat files (found without importing it: its import
    needs pkg_resources, which modern setuptools no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.origin:
        raise MissingWeightsError(
            "dlib_face_models", "PyPI package face-recognition-models", "pip install face-recognition-models",
            "the package is not installed",
        )
    return Path(spec.origin).parent / "models"


def dlib_available() -> bool:
    try:
        import dlib  # noqa: F401
    except ImportError:
        return False
    try:
        folder = dlib_models_dir()
    except MissingWeightsError:
        return False
    return all((folder / name).is_file() for name in _MODEL_FILES.values())


def _load() -> dict[str, object]:
    with _load_lock:
        if not _models:
            try:
                import dlib
            except ImportError as exc:
                raise MissingWeightsError(
                    "dlib", "PyPI package dlib-bin", "pip install dlib-bin", "dlib is not installed"
                ) from exc
            folder = dlib_models_dir()
            for name in _MODEL_FILES.values():
                if not (folder / name).is_file():
                    raise MissingWeightsError(
                        "dlib_face_models", f"face-recognition-models/{name}",
                        "pip install --force-reinstall face-recognition-models", f"{folder / name} is missing",
                    )
            _models["detector"] = dlib.get_frontal_face_detector()
            _models["landmarks"] = dlib.shape_predictor(str(folder / _MODEL_FILES["landmarks"]))
            _models["embedding"] = dlib.face_recognition_model_v1(str(folder / _MODEL_FILES["embedding"]))
    return _models


def _points_to_five(points: np.ndarray) -> np.ndarray:
    """68-point layout -> FFHQ five points: eye centres, nose tip, mouth corners."""
    return np.stack(
        [points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]]
    ).astype(np.float64)


class DlibBackend:
    name = "dlib"
    same_person_threshold = 1.0 - DLIB_SAME_PERSON_DISTANCE / _ZERO_SIMILARITY_DISTANCE  # 0.5
    random_weights = False

    def __init__(self, upsample_when_empty: bool = True) -> None:
        self._models = _load()
        self.upsample_when_empty = upsample_when_empty

    def _rect(self, box: np.ndarray):  # -> dlib.rectangle
        import dlib

        x0, y0, x1, y1 = (int(round(v)) for v in box)
        return dlib.rectangle(x0, y0, x1, y1)

    def _shape(self, rgb: np.ndarray, box: np.ndarray):
        return self._models["landmarks"](rgb, self._rect(box))

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        detector = self._models["detector"]
        rects, scores, _ = detector.run(rgb, 0, 0.0)
        # HOG finds faces of 80 px and up; when nothing is found in a small image, look again at 2x.
        if not rects and self.upsample_when_empty and max(rgb.shape[:2]) <= 1200:
            rects, scores, _ = detector.run(rgb, 1, 0.0)
        if not rects:
            return []
        best = max(scores)
        faces: list[DetectedFace] = []
        for rect, score in zip(rects, scores, strict=True):
            if score < _RELATIVE_SCORE * best:
                continue
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float64)
            shape = self._shape(rgb, box)
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
            faces.append(DetectedFace(box, float(score), _points_to_five(points), points))
        return faces

    def embed(self, rgb: np.ndarray, face: DetectedFace) -> np.ndarray:
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        shape = self._shape(rgb, face.box)
        descriptor = np.asarray(self._models["embedding"].compute_face_descriptor(rgb, shape), dtype=np.float32)
        norm = float(np.linalg.norm(descriptor)) or 1.0
        return descriptor / norm

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        distance = float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
        return float(np.clip(1.0 - distance / _ZERO_SIMILARITY_DISTANCE, 0.0, 1.0))

    def quality(self, aligned: Image.Image) -> float | None:
        return None

    def face_mask(self, aligned: Image.Image) -> Image.Image | None:
        return None
