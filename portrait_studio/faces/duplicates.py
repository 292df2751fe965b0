"""Near-duplicate photos in a training set: the same shot rotated, mirrored, cropped, resized or re-saved.

FaceChain's and EasyPhoto's guides ask for variety (angles, light, expressions); six copies of one photo
teach the LoRA one picture. Criterion, on the faces the check kept (so the identity test has already
said "same person"), both must hold:

- **pixels**: the face regions of the *aligned* crops (alignment undoes rotation, scale and crop of the
  whole photo), as 16 x 16 grey images with mean removed, correlate at least ``MIN_PIXEL_CORRELATION``;
  the better of the crop and its mirror image counts (a mirrored selfie is the same shot);
- **identity**: the face embeddings agree at least ``MIN_DUPLICATE_SIMILARITY`` on the backend's
  calibrated [0, 1] similarity, well above the same-person thresholds (dlib 0.5, facexlib 0.3).

Measured with the dlib backend (tests/faces/test_duplicates.py): grace_hopper.jpg against its mirror,
6 and 12 degree rotations, a crop, a 3/4 resize, a blur and a darker copy correlates 0.976-0.998 with
identity similarity 0.87-0.92; against skimage's astronaut 0.48 and 0.44. Two different shots of one
person differ in light, expression and pose, which the 16 x 16 face picture sees.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

PICTURE_SIDE = 16
MIN_PIXEL_CORRELATION = 0.95
MIN_DUPLICATE_SIMILARITY = 0.7
# The centre of the aligned crop: eyes, nose and mouth, little hair or background.
_FACE_BOX = (0.2, 0.2, 0.8, 0.85)


def face_picture(crop: Image.Image) -> np.ndarray:
    """The face region of an aligned crop as a unit vector of PICTURE_SIDE**2 grey values, mean removed."""
    width, height = crop.size
    left, top, right, bottom = _FACE_BOX
    face = crop.convert("L").crop((round(left * width), round(top * height), round(right * width),
                                   round(bottom * height)))
    small = face.resize((PICTURE_SIDE, PICTURE_SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0)
    values = np.asarray(small, dtype=np.float64).reshape(-1)
    values = values - values.mean()
    norm = float(np.linalg.norm(values))
    return values / norm if norm > 0 else values


def pixel_correlation(a: Image.Image, b: Image.Image) -> float:
    """How alike two aligned face crops look, in [-1, 1], mirror-invariant."""
    picture = face_picture(a)
    return float(max(picture @ face_picture(b), picture @ face_picture(ImageOps.mirror(b))))


@dataclass
class DuplicateGroup:
    names: list[str]  # file names, first = the one listed first in the upload
    correlation: float  # smallest pixel correlation with the first member
    similarity: float  # smallest identity similarity to the first member


def near_duplicate_groups(
    names: Sequence[str], crops: Sequence[Image.Image], embeddings: Sequence[np.ndarray],
    similarity: Callable[[np.ndarray, np.ndarray], float],
) -> list[DuplicateGroup]:
    """Groups of two or more photos that are copies of one shot (single-link on the criterion above)."""
    count = len(names)
    if not count == len(crops) == len(embeddings):
        raise ValueError("names, crops and embeddings must have the same length")
    pictures = [face_picture(c) for c in crops]
    mirrored = [face_picture(ImageOps.mirror(c)) for c in crops]
    parent = list(range(count))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    correlation = np.ones((count, count))
    similar = np.ones((count, count))
    for i in range(count):
        for j in range(i + 1, count):
            corr = float(max(pictures[i] @ pictures[j], pictures[i] @ mirrored[j]))
            sim = float(similarity(embeddings[i], embeddings[j]))
            correlation[i, j] = correlation[j, i] = corr
            similar[i, j] = similar[j, i] = sim
            if corr >= MIN_PIXEL_CORRELATION and sim >= MIN_DUPLICATE_SIMILARITY:
                parent[root(j)] = root(i)
    members: dict[int, list[int]] = {}
    for i in range(count):
        members.setdefault(root(i), []).append(i)
    groups = []
    for indices in members.values():
        if len(indices) < 2:
            continue
        first, rest = indices[0], indices[1:]
        groups.append(DuplicateGroup([names[i] for i in indices], float(min(correlation[first, i] for i in rest)),
                                     float(min(similar[first, i] for i in rest))))
    return groups


def duplicate_warning(group: DuplicateGroup) -> str:
    shown = ", ".join(group.names)
    return (f"too similar: {shown} look like copies of one photo (rotated, mirrored, cropped or resized). "
            "They teach the likeness one picture; use photos with different light, angles and expressions.")
