"""Landmark images: the per-frame pictures the PoseGuider reads, drawn as the reference draws them.

The reference (its FaceMeshVisualizer over MediaPipe's drawing utilities) draws, on a black 512 x 512
canvas, 2-pixel lines between mesh vertices: the lower face oval, both eyes, both eyebrows and the lips
split into eight colour-coded runs, then resizes the canvas to the frame size. A vertex outside the frame
is not drawn, nor are its edges. Colours below are the reference's BGR triples (it draws on a BGR image
and converts to RGB afterwards); we draw their RGB equivalent straight onto an RGB canvas.
"""

from __future__ import annotations

import numpy as np

CANVAS = 512
THICKNESS = 2


def _chain(*vertices: int) -> list[tuple[int, int]]:
    return list(zip(vertices[:-1], vertices[1:], strict=True))


# (BGR colour, edges), in the reference's drawing order (later runs paint over earlier ones).
REGIONS: list[tuple[tuple[int, int, int], list[tuple[int, int]]]] = [
    ((10, 200, 10), _chain(21, 162, 127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152,
                           377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356, 389, 251)),  # face oval
    ((180, 200, 10), _chain(263, 249, 390, 373, 374, 380, 381, 382, 362)
     + _chain(263, 466, 388, 387, 386, 385, 384, 398, 362)),  # left eye (the subject's)
    ((180, 220, 10), _chain(276, 283, 282, 295, 285) + _chain(300, 293, 334, 296, 336)),  # left eyebrow
    ((10, 200, 180), _chain(33, 7, 163, 144, 145, 153, 154, 155, 133)
     + _chain(33, 246, 161, 160, 159, 158, 157, 173, 133)),  # right eye
    ((10, 220, 180), _chain(46, 53, 52, 65, 55) + _chain(70, 63, 105, 66, 107)),  # right eyebrow
    ((10, 180, 20), _chain(61, 146, 91, 181, 84, 17)),  # lips: outer bottom left
    ((20, 10, 180), _chain(17, 314, 405, 321, 375, 291)),  # outer bottom right
    ((100, 100, 30), _chain(78, 95, 88, 178, 87, 14)),  # inner bottom left
    ((100, 150, 50), _chain(14, 317, 402, 318, 324, 308)),  # inner bottom right
    ((20, 80, 100), _chain(61, 185, 40, 39, 37, 0)),  # outer top left
    ((80, 100, 20), _chain(0, 267, 269, 270, 409, 291)),  # outer top right
    ((120, 100, 200), _chain(78, 191, 80, 81, 82, 13)),  # inner top left
    ((150, 120, 100), _chain(13, 312, 311, 310, 415, 308)),  # inner top right
]
DRAWN_VERTICES = sorted({v for _, edges in REGIONS for edge in edges for v in edge})


def draw(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """(468, 2) image pixels -> (height, width, 3) uint8 RGB landmark image."""
    import cv2

    canvas = np.zeros((CANVAS, CANVAS, 3), np.uint8)
    normalised = points / np.array([width, height], dtype=np.float64)
    inside = np.all((normalised >= 0) & (normalised <= 1), axis=1)
    pixels = np.minimum(np.floor(normalised * CANVAS), CANVAS - 1).astype(int)
    for bgr, edges in REGIONS:
        for a, b in edges:
            if inside[a] and inside[b]:
                cv2.line(canvas, tuple(map(int, pixels[a])), tuple(map(int, pixels[b])), bgr[::-1], THICKNESS)
    return cv2.resize(canvas, (width, height))


def draw_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """(f, 468, 2) -> (f, height, width, 3) uint8."""
    return np.stack([draw(points, width, height) for points in frames])
