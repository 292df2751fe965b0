"""The reference face's mesh, derived from dlib's 68 landmarks in MediaPipe's vertex numbering.

AniPortrait takes the portrait's 468-point face mesh from MediaPipe's face landmarker: the metric 3D
vertices (audio2mesh predicts per-vertex offsets from them) and the face-to-camera transform. No offline
source of that model exists on these machines: the legacy ``mediapipe`` wheels do ship
``face_landmark.tflite`` but pin ``numpy<2`` and ``opencv-contrib-python`` (both clash with our stack), and
the canonical-geometry files behind the metric mesh and the transform are in neither wheel.

So we derive what the pipeline *uses*. The landmark images the PoseGuider reads draw only the contours of
lips, eyes, eyebrows and the lower face oval (about 120 of the 468 vertices); we place exactly those
vertices on dlib's 68-point contours (resampled by arc length, centre points pinned to dlib's centre points),
back-project them through the reference's camera (63 degree vertical field of view) to a depth at which the
outer eye corners are ``EYE_CORNER_CM`` apart, and give them a generic ellipsoidal depth. Undrawn vertices
sit at the mesh centre; they never reach an image. What this costs in fidelity, against the real landmarker:
eyelids from 4 dlib points each instead of 9, eyebrows from one dlib row (the lower row is an offset copy),
the temples of the oval extrapolated, a generic depth (so yaw foreshortening is approximate), and no iris.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MESH_POINTS = 468
FIELD_OF_VIEW_DEG = 63.0  # the reference's perspective camera (MediaPipe's face-geometry environment)
NEAR, FAR = 1.0, 10000.0
EYE_CORNER_CM = 9.0  # outer eye corners (vertices 33, 263) in MediaPipe's canonical face, about 9 cm apart
DEPTH_BULGE = 0.35  # ellipsoid depth: a point at the oval's side lies this many half-widths behind the centre

# MediaPipe's eyelid vertices, corner to corner in image order. Both lids of an eye have the same count and are
# resampled along dlib's lids by arc length, so the k-th upper and the k-th lower vertex face each other.
_RIGHT_UPPER_LID = [33, 246, 161, 160, 159, 158, 157, 173, 133]
_RIGHT_LOWER_LID = [33, 7, 163, 144, 145, 153, 154, 155, 133]
_LEFT_UPPER_LID = [362, 398, 384, 385, 386, 387, 388, 466, 263]
_LEFT_LOWER_LID = [362, 382, 381, 380, 374, 373, 390, 249, 263]
UPPER_LID = np.array(_RIGHT_UPPER_LID[1:-1] + _LEFT_UPPER_LID[1:-1])  # the corners belong to both lids
LOWER_LID = np.array(_RIGHT_LOWER_LID[1:-1] + _LEFT_LOWER_LID[1:-1])

# MediaPipe vertex chains, in image order (left to right, as seen), and the dlib 68 polylines they follow.
# "right" eye/brow = the subject's right = the left of the image (MediaPipe's naming).
_CHAINS: list[tuple[list[int], list[int]]] = [
    # lips, outer then inner, upper and lower halves split at the centre points
    ([61, 185, 40, 39, 37, 0], [48, 49, 50, 51]), ([0, 267, 269, 270, 409, 291], [51, 52, 53, 54]),
    ([61, 146, 91, 181, 84, 17], [48, 59, 58, 57]), ([17, 314, 405, 321, 375, 291], [57, 56, 55, 54]),
    ([78, 191, 80, 81, 82, 13], [60, 61, 62]), ([13, 312, 311, 310, 415, 308], [62, 63, 64]),
    ([78, 95, 88, 178, 87, 14], [60, 67, 66]), ([14, 317, 402, 318, 324, 308], [66, 65, 64]),
    # eyes: upper and lower lids
    (_RIGHT_UPPER_LID, [36, 37, 38, 39]), (_RIGHT_LOWER_LID, [36, 41, 40, 39]),
    (_LEFT_UPPER_LID, [42, 43, 44, 45]), (_LEFT_LOWER_LID, [42, 47, 46, 45]),
    # eyebrows: upper rows on dlib's brow points
    ([70, 63, 105, 66, 107], [17, 18, 19, 20, 21]), ([336, 296, 334, 293, 300], [22, 23, 24, 25, 26]),
    # face oval: ear to chin to ear
    ([234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152], list(range(0, 9))),
    ([152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454], list(range(8, 17))),
]
_LOWER_BROWS = ([46, 53, 52, 65, 55], [276, 283, 282, 295, 285])  # copies of the upper rows, moved down
_TEMPLES = ([21, 162, 127], [251, 389, 356])  # from the outer brow end down to the ear-level oval point



def _resample(polyline: np.ndarray, count: int) -> np.ndarray:
    """``count`` points evenly spaced by arc length along ``polyline`` (n, 2), ends included."""
    steps = np.linalg.norm(np.diff(polyline, axis=0), axis=1)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    targets = np.linspace(0.0, along[-1], count)
    return np.stack([np.interp(targets, along, polyline[:, k]) for k in range(2)], axis=1)


def mesh_points_from_68(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dlib's (68, 2) image points -> ((468, 2) points in MediaPipe's numbering, (468,) bool: placed)."""
    p = np.asarray(points, dtype=np.float64)
    if p.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {p.shape}")
    out = np.zeros((MESH_POINTS, 2))
    placed = np.zeros(MESH_POINTS, dtype=bool)
    for indices, dlib in _CHAINS:
        out[indices] = _resample(p[dlib], len(indices))
        placed[indices] = True
    eye_gap = np.linalg.norm(p[36:42].mean(0) - p[42:48].mean(0))
    brow_down = (p[27] - p[21:23].mean(0)) / max(np.linalg.norm(p[27] - p[21:23].mean(0)), 1e-6) * 0.12 * eye_gap
    for lower, upper in zip(_LOWER_BROWS, ([70, 63, 105, 66, 107], [300, 293, 334, 296, 336]), strict=True):
        out[lower] = out[upper] + brow_down
        placed[lower] = True
    for temple, (brow_end, ear) in zip(_TEMPLES, ((17, 0), (26, 16)), strict=True):
        outward = np.array([-1.0, 0.0]) if brow_end == 17 else np.array([1.0, 0.0])
        for k, vertex in enumerate(temple):
            t = k / len(temple)  # 0 at the brow end, towards the ear
            out[vertex] = p[brow_end] * (1 - t) + p[ear] * t + outward * 0.15 * eye_gap * np.sin(np.pi * (t + 0.5) / 2)
            placed[vertex] = True
    out[~placed] = out[placed].mean(0)
    return out, placed


# The reference multiplies row vectors by the transpose of its OpenGL matrix, so the homogeneous w it divides
# by is z times the matrix's (near * far) / (near - far) term, not -z: a 1.0001 factor we keep.
W_PER_Z = NEAR * FAR / (NEAR - FAR)


def _focal() -> float:
    return 1.0 / np.tan(np.radians(FIELD_OF_VIEW_DEG) / 2)


def to_pixels(camera: np.ndarray, width: int, height: int) -> np.ndarray:
    """(n, 3) camera-space points (the camera looks down -z) -> (n, 2) image pixels, as the reference projects."""
    f, aspect = _focal(), width / height
    w = W_PER_Z * camera[:, 2]
    x = (f / aspect * camera[:, 0] / w + 1) * 0.5 * width
    y = (-f * camera[:, 1] / w + 1) * 0.5 * height
    return np.stack([x, y], axis=1)


@dataclass(frozen=True)
class ReferenceMesh:
    vertices: np.ndarray  # (468, 3) centimetres, face-centred, x right, y up, z towards the camera
    transform: np.ndarray  # (4, 4) face -> camera
    placed: np.ndarray  # (468,) which vertices carry real positions (the drawn ones)
    width: int
    height: int


def reference_mesh(points68: np.ndarray, width: int, height: int) -> ReferenceMesh:
    """The portrait's mesh and face-to-camera transform, so that projecting it gives its landmarks back."""
    image_points, placed = mesh_points_from_68(points68)
    f, aspect = _focal(), width / height
    pixel_gap = np.linalg.norm(image_points[33] - image_points[263])
    w = EYE_CORNER_CM * width * f / (2 * aspect * max(pixel_gap, 1e-6))  # homogeneous w of the face's plane
    depth = w / -W_PER_Z  # its distance from the camera, so the eye corners are EYE_CORNER_CM apart
    ndc_x = 2 * image_points[:, 0] / width - 1
    ndc_y = 1 - 2 * image_points[:, 1] / height
    camera = np.stack([ndc_x * aspect * w / f, ndc_y * w / f, np.full(MESH_POINTS, -depth)], axis=1)
    centre = camera[placed].mean(0)
    face = camera - centre
    half_width = max(np.abs(face[placed, 0]).max(), 1e-6)
    face[:, 2] -= DEPTH_BULGE * half_width * (face[:, 0] / half_width) ** 2
    # Moving a point along z changes where it projects: put each point back on its pixel at its new depth.
    scale = (depth - face[:, 2]) / depth
    face[:, :2] = (camera[:, :2] - centre[:2]) * scale[:, None] + centre[:2] * (scale[:, None] - 1)
    transform = np.eye(4)
    transform[:3, 3] = centre
    return ReferenceMesh(face, transform, placed, width, height)


def pose_matrix(pose: np.ndarray) -> np.ndarray:
    """(6,) Euler angles xyz in degrees + translation -> 4x4 (as the reference's euler_and_translation_to_matrix)."""
    from scipy.spatial.transform import Rotation

    m = np.eye(4)
    m[:3, :3] = Rotation.from_euler("xyz", pose[:3], degrees=True).as_matrix()
    m[:3, 3] = pose[3:6]
    return m


def project(vertices: np.ndarray, transform: np.ndarray, poses: np.ndarray, width: int, height: int) -> np.ndarray:
    """(f, 468, 3) face-space vertices under (f, 6) head poses -> (f, 468, 2) image pixels."""
    out = np.empty((vertices.shape[0], vertices.shape[1], 2))
    for i, (frame, pose) in enumerate(zip(vertices, poses, strict=True)):
        homogeneous = np.concatenate([frame, np.ones((frame.shape[0], 1))], axis=1)
        out[i] = to_pixels((homogeneous @ (transform @ pose_matrix(pose)).T)[:, :3], width, height)
    return out


def close_eyelids(vertices: np.ndarray, amounts: np.ndarray) -> np.ndarray:
    """(f, 468, 3) vertices, (f,) 0 (open) .. 1 (shut): each upper-lid vertex moves that share of the way to
    the lower-lid vertex facing it (a blink is the upper lid coming down; the lower one barely moves)."""
    out = np.array(vertices, dtype=np.float64)
    amount = np.clip(np.asarray(amounts, dtype=np.float64), 0.0, 1.0)[:, None, None]
    out[:, UPPER_LID] += amount * (out[:, LOWER_LID] - out[:, UPPER_LID])
    return out
