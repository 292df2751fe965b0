"""Find the main face of a photo and cut an FFHQ-style aligned square around it.

Detection goes through ``portrait_studio.faces.get_face_backend`` when that package is present; until
then (and if it fails to import) a small dlib fallback here does the job with the real weights that
ship in the ``face-recognition-models`` wheel. Either way the result is :class:`FaceLandmarks`: a box
and five points (eye on the image's left, eye on the right, nose tip, mouth left, mouth right).

The crop follows the geometry FFHQ used to align faces (which the AnimeGAN face models were trained
on): a square centred a little below the eyes, turned with the eye line, sized from the eye distance
and the eye-to-mouth distance. Parts of the square outside the photo are filled by reflection, faded
into a blur so the border does not look mirrored.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from portrait_studio.config import Settings
from portrait_studio.errors import MissingWeightsError

# dlib HOG scores: real faces score ~1 or more; a mission patch in scikit-image's astronaut scores 0.12.
DLIB_MIN_SCORE = 0.3
# Detect on a copy whose long side is at most this: HOG cost grows with pixels, faces stay findable.
DETECT_MAX_SIDE = 1024
_dlib_lock = threading.Lock()


@dataclass(frozen=True)
class FaceLandmarks:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels
    landmarks5: np.ndarray  # (5, 2) x, y

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def find_faces(rgb: np.ndarray, settings: Settings) -> list[FaceLandmarks]:
    """Faces in an RGB uint8 array, largest first."""
    try:
        from portrait_studio.faces import get_face_backend  # type: ignore[attr-defined]
    except ImportError:
        faces = _dlib_faces(rgb)
    else:
        faces = [_from_backend(face) for face in get_face_backend(settings).detect(rgb)]
    return sorted(faces, key=lambda f: f.area, reverse=True)


def _from_backend(face: Any) -> FaceLandmarks:
    box = tuple(float(v) for v in np.asarray(face.box, dtype=np.float64).reshape(4))
    points = np.asarray(face.landmarks5, dtype=np.float64).reshape(5, 2)
    return FaceLandmarks(box=box, landmarks5=points)  # type: ignore[arg-type]


# ---- dlib fallback (until portrait_studio.faces exists) ----------------------------------------------
def _dlib_model_file(name: str) -> Path:
    # Importing face_recognition_models fails on pkg_resources; its data files are found via the spec.
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / "models" / name
        if path.is_file():
            return path
    raise MissingWeightsError(
        "face_landmarks_dlib", name, "pip install face-recognition-models", "the face-recognition-models wheel"
        " is not installed",
    )


@lru_cache(maxsize=1)
def _dlib_models() -> tuple[Any, Any]:
    import dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(
        str(_dlib_model_file("shape_predictor_68_face_landmarks.dat"))
    )


def _dlib_faces(rgb: np.ndarray) -> list[FaceLandmarks]:
    detector, predictor = _dlib_models()
    scale = min(1.0, DETECT_MAX_SIDE / max(rgb.shape[:2]))
    small = rgb
    if scale < 1.0:
        size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
        small = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
    small = np.ascontiguousarray(small)
    upsample = 1 if max(small.shape[:2]) < 800 else 0
    faces = []
    with _dlib_lock:  # dlib objects are not documented as thread-safe
        boxes, scores, _ = detector.run(small, upsample, DLIB_MIN_SCORE)
        for rect, _score in zip(boxes, scores, strict=True):
            shape = predictor(small, rect)
            pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64) / scale
            five = np.stack([
                pts[36:42].mean(axis=0), pts[42:48].mean(axis=0), pts[30], pts[48], pts[54],
            ])
            box = (rect.left() / scale, rect.top() / scale, rect.right() / scale, rect.bottom() / scale)
            faces.append(FaceLandmarks(box=box, landmarks5=five))
    return faces


# ---- alignment ----------------------------------------------------------------------------------------
def face_quad(landmarks5: np.ndarray) -> np.ndarray:
    """Corners (top-left, bottom-left, bottom-right, top-right) of the aligned square, FFHQ geometry."""
    points = np.asarray(landmarks5, dtype=np.float64)
    eye_left, eye_right = points[0], points[1]
    mouth = (points[3] + points[4]) / 2
    eye_mid = (eye_left + eye_right) / 2
    eye_vec = eye_right - eye_left
    mouth_vec = mouth - eye_mid
    # The horizontal axis blends the eye line with the normal of the eye-to-mouth line (robust to both).
    x_axis = eye_vec + np.array([mouth_vec[1], -mouth_vec[0]])
    x_axis /= max(np.hypot(*x_axis), 1e-6)
    x_axis *= max(np.hypot(*eye_vec) * 2.0, np.hypot(*mouth_vec) * 1.8)
    y_axis = np.array([-x_axis[1], x_axis[0]])
    center = eye_mid + mouth_vec * 0.1
    return np.stack([center - x_axis - y_axis, center - x_axis + y_axis, center + x_axis + y_axis,
                     center + x_axis - y_axis])


def align_face(image: Image.Image, face: FaceLandmarks, size: int) -> Image.Image:
    """The aligned ``size`` x ``size`` face square of an RGB ``image``."""
    quad = face_quad(face.landmarks5)
    side = float(np.hypot(*(quad[3] - quad[0])))
    # Shrink big photos first so the final resample does not alias (the quad maps ~1:1 afterwards).
    shrink = int(np.floor(side / size / 2))
    if shrink > 1:
        image = image.resize((max(1, round(image.width / shrink)), max(1, round(image.height / shrink))),
                             Image.Resampling.LANCZOS)
        quad = quad / shrink
        side /= shrink
    image, quad = _pad_for_quad(image, quad, side)
    return image.transform((size, size), Image.Transform.QUAD, tuple(quad.flatten()), Image.Resampling.BILINEAR)


def _pad_for_quad(image: Image.Image, quad: np.ndarray, side: float) -> tuple[Image.Image, np.ndarray]:
    """Reflect-pad so the quad lies inside the image; fade the padding into a blur of itself."""
    w, h = image.size
    left = max(0, int(np.ceil(-quad[:, 0].min())) + 2)
    top = max(0, int(np.ceil(-quad[:, 1].min())) + 2)
    right = max(0, int(np.ceil(quad[:, 0].max() - w)) + 2)
    bottom = max(0, int(np.ceil(quad[:, 1].max() - h)) + 2)
    if not (left or top or right or bottom):
        return image, quad
    rgb = np.asarray(image, dtype=np.float32)
    padded = np.pad(rgb, ((top, bottom), (left, right), (0, 0)), mode="reflect" if min(w, h) > 1 else "edge")
    ys, xs = np.ogrid[: padded.shape[0], : padded.shape[1]]
    # Distance outside the original photo, 0 inside, as a fraction of a quarter face square.
    outside = np.maximum(np.maximum(left - xs, xs - (left + w - 1)), np.maximum(top - ys, ys - (top + h - 1)))
    fade = np.clip(outside / max(side * 0.25, 1.0), 0.0, 1.0)[..., None].astype(np.float32)
    blurred = np.asarray(
        Image.fromarray(padded.astype(np.uint8)).filter(ImageFilter.GaussianBlur(max(side * 0.02, 1.0))),
        dtype=np.float32,
    )
    mixed = padded * (1 - fade) + blurred * fade
    return Image.fromarray(np.clip(mixed + 0.5, 0, 255).astype(np.uint8)), quad + np.array([left, top])
