"""Face masks and white backgrounds for aligned crops.

A mask is an L-mode image the size of the crop: 255 on the face (brows to chin, ear to ear), 0 elsewhere,
with a soft edge. It comes from the parsing model when the backend has one, else from landmarks.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageFilter

from portrait_studio.faces.align import transform_points


def _feather(mask: np.ndarray, size: int) -> Image.Image:
    radius = max(1.0, size / 128.0)
    return Image.fromarray(mask.astype(np.uint8)).filter(ImageFilter.GaussianBlur(radius))


def mask_from_points(points68: np.ndarray, matrix: np.ndarray, size: int) -> Image.Image:
    """Hull of the jaw line and the eyebrows lifted to the hairline (68-point layout, source coords)."""
    points = transform_points(matrix, points68)
    jaw, brows, nose_bridge = points[0:17], points[17:27], points[27]
    # The forehead is not in the 68 points; lift the brows away from the nose bridge by ~60%.
    forehead = brows + (brows - nose_bridge) * np.array([0.1, 0.9])
    hull = cv2.convexHull(np.concatenate([jaw, brows, forehead]).astype(np.float32)).astype(np.int32)
    mask = np.zeros((size, size), dtype=np.uint8)
    cv2.fillConvexPoly(mask, hull, 255)
    return _feather(mask, size)


def mask_from_five(landmarks5: np.ndarray, matrix: np.ndarray, size: int) -> Image.Image:
    """An ellipse around the five landmarks (when there is neither a parser nor a dense outline)."""
    lm = transform_points(matrix, landmarks5)
    eyes_mid = (lm[0] + lm[1]) / 2
    mouth_mid = (lm[3] + lm[4]) / 2
    eye_distance = float(np.linalg.norm(lm[1] - lm[0]))
    centre = (eyes_mid + mouth_mid) / 2
    axes = (int(eye_distance * 1.05), int(np.linalg.norm(mouth_mid - eyes_mid) * 1.9))
    angle = float(np.degrees(np.arctan2(lm[1][1] - lm[0][1], lm[1][0] - lm[0][0])))
    mask = np.zeros((size, size), dtype=np.uint8)
    cv2.ellipse(mask, (int(centre[0]), int(centre[1])), axes, angle, 0, 360, 255, -1)
    return _feather(mask, size)


# CelebAMask-HQ labels used by facexlib's parsing models.
PARSING_FACE_LABELS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13)
PARSING_BACKGROUND_LABEL = 0


def mask_from_parsing(labels: np.ndarray, size: int) -> Image.Image:
    mask = np.isin(labels, PARSING_FACE_LABELS).astype(np.uint8) * 255
    if mask.shape != (size, size):
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
    return _feather(mask, size)


def person_mask(crop: Image.Image, face_mask: Image.Image) -> Image.Image:
    """Foreground (head, hair, neck, shoulders) of a portrait crop by GrabCut seeded with the face mask.

    EasyPhoto uses a saliency model for this; GrabCut needs no weights and the face mask gives it a
    reliable seed: the face is sure foreground, the top corners sure background.
    """
    work = 256
    rgb = np.asarray(crop.convert("RGB").resize((work, work), Image.Resampling.BILINEAR))
    face = np.asarray(face_mask.resize((work, work), Image.Resampling.BILINEAR)) > 128
    if not face.any():
        return Image.new("L", crop.size, 255)
    seeds = np.full((work, work), cv2.GC_PR_BGD, dtype=np.uint8)
    ys, xs = np.nonzero(face)
    top, bottom = ys.min(), ys.max()
    left, right = xs.min(), xs.max()
    width = right - left
    # Hair above and around the face, neck and shoulders below it: probably foreground.
    seeds[max(0, top - width // 2): work, max(0, left - width // 3): min(work, right + width // 3)] = cv2.GC_PR_FGD
    seeds[max(0, bottom): work, max(0, left - width // 2): min(work, right + width // 2)] = cv2.GC_PR_FGD
    eroded = cv2.erode(face.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    seeds[eroded] = cv2.GC_FGD
    band = max(4, work // 16)
    seeds[:band, :band] = cv2.GC_BGD
    seeds[:band, -band:] = cv2.GC_BGD
    background_model = np.zeros((1, 65), np.float64)
    foreground_model = np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(rgb, seeds, None, background_model, foreground_model, 3, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return Image.new("L", crop.size, 255)
    foreground = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8) * 255
    return Image.fromarray(foreground).resize(crop.size, Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(2))


def on_white(crop: Image.Image, foreground: Image.Image) -> Image.Image:
    white = Image.new("RGB", crop.size, (255, 255, 255))
    return Image.composite(crop.convert("RGB"), white, foreground)
