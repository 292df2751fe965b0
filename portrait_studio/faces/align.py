"""Face geometry: FFHQ-style similarity alignment and head angles from five landmarks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

# The five-point FFHQ template at 512 x 512 (eyes, nose tip, mouth corners), the layout GFPGAN and
# most face restorers expect; it scales linearly with the crop size.
FFHQ_TEMPLATE_512 = np.array(
    [[192.98, 239.95], [318.90, 240.19], [256.63, 314.02], [201.26, 371.41], [313.09, 371.15]], dtype=np.float64
)
FFHQ_EYE_DISTANCE_512 = float(np.linalg.norm(FFHQ_TEMPLATE_512[1] - FFHQ_TEMPLATE_512[0]))


def template(crop_size: int, zoom: float = 1.0) -> np.ndarray:
    """The template for a ``crop_size`` square; ``zoom`` < 1 leaves more room around the face."""
    centre = np.array([256.0, 256.0])
    return ((FFHQ_TEMPLATE_512 - centre) * zoom + centre) * (crop_size / 512.0)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 rotation+uniform scale+translation mapping ``src`` points onto ``dst`` (least squares).

    Umeyama's closed form: no outlier rejection, because five landmarks from one detector are all or
    nothing and RANSAC on five points only adds randomness.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    variance = (src_c**2).sum() / len(src)
    scale = float((singular * np.diag(sign)).sum() / variance) if variance > 0 else 1.0
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


@dataclass
class AlignedFace:
    image: Image.Image  # crop_size x crop_size RGB
    matrix: np.ndarray  # 2x3, source pixels -> crop pixels
    scale: float  # crop pixels per source pixel (> 1 means the face was enlarged)


def align_face(rgb: np.ndarray, landmarks5: np.ndarray, crop_size: int = 512, zoom: float = 1.0) -> AlignedFace:
    """Warp ``rgb`` so the five landmarks land on the FFHQ template; the border is reflected, not black."""
    matrix = similarity_transform(landmarks5, template(crop_size, zoom))
    scale = float(math.hypot(matrix[0, 0], matrix[0, 1]))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    warped = cv2.warpAffine(
        rgb, matrix, (crop_size, crop_size), flags=interpolation, borderMode=cv2.BORDER_REFLECT101
    )
    return AlignedFace(Image.fromarray(warped), matrix, scale)


@dataclass
class HeadAngles:
    roll: float  # degrees, eye line against the horizontal
    yaw: float  # degrees, estimated from where the nose sits between the eyes (sign: image right)

    @property
    def frontal(self) -> float:
        """1 for a face looking straight at the camera, falling to 0 at a profile (EasyPhoto-style)."""
        return max(0.0, 1.0 - abs(self.yaw) / 90.0) * max(0.0, 1.0 - abs(self.roll) / 180.0)


def head_angles(landmarks5: np.ndarray) -> HeadAngles:
    """Roll from the eye line; yaw from the nose's offset from the eye/mouth midline.

    Without a 3D model yaw is an estimate: in a frontal face the nose tip sits on the midline between the
    eyes and between the mouth corners; turning the head moves it sideways by roughly
    ``sin(yaw) * 0.9 * eye distance`` (nose depth relative to eye spacing, average adult head).
    """
    lm = np.asarray(landmarks5, dtype=np.float64)
    left_eye, right_eye, nose, mouth_l, mouth_r = lm
    dx, dy = right_eye - left_eye
    roll = math.degrees(math.atan2(dy, dx))
    eye_distance = math.hypot(dx, dy) or 1.0
    # Undo roll so "sideways" is along the eye line.
    cos_r, sin_r = math.cos(-math.radians(roll)), math.sin(-math.radians(roll))

    def rotated_x(point: np.ndarray) -> float:
        return float(point[0] * cos_r - point[1] * sin_r)

    midline = (rotated_x((left_eye + right_eye) / 2) + rotated_x((mouth_l + mouth_r) / 2)) / 2
    offset = (rotated_x(nose) - midline) / eye_distance
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, offset / 0.9))))
    return HeadAngles(roll=roll, yaw=yaw)


def landmarks_plausible(face_box: np.ndarray, landmarks5: np.ndarray) -> bool:
    """Reject detections whose landmarks cannot belong to a face (a patch, a pattern, a pet's back)."""
    lm = np.asarray(landmarks5, dtype=np.float64)
    x0, y0, x1, y1 = face_box
    width = max(x1 - x0, 1.0)
    left_eye, right_eye, nose, mouth_l, mouth_r = lm
    eye_distance = float(np.linalg.norm(right_eye - left_eye))
    if not 0.15 * width <= eye_distance <= 0.8 * width:
        return False
    if right_eye[0] <= left_eye[0]:
        return False
    eye_y = (left_eye[1] + right_eye[1]) / 2
    mouth_y = (mouth_l[1] + mouth_r[1]) / 2
    roll = head_angles(lm).roll
    if abs(roll) > 60:
        return False
    # In the roll-free frame the mouth is below the eyes and the nose in between.
    if abs(roll) < 45 and not (eye_y < mouth_y and nose[1] > eye_y - 0.1 * eye_distance):
        return False
    margin = 0.5 * width
    inside = (lm[:, 0] > x0 - margin) & (lm[:, 0] < x1 + margin) & (lm[:, 1] > y0 - margin) & (lm[:, 1] < y1 + margin)
    return bool(inside.all())
