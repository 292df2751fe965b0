"""Head pose and eye openness from dlib's 68 landmarks, frame by frame, for a reference video.

Pose: a rigid Perspective-n-Point fit (``cv2.solvePnP``, Levenberg-Marquardt) of the nose and the four eye
corners, the 13 of the 68 points that expressions barely move (lips, jaw, brows and lids all do). Their 3D
model is the *first frame's own* points, back-projected through the camera at a generic depth profile: the
subject's proportions come from the video, only the depths are assumed. So the first frame is the neutral
pose exactly, and every other frame's pose is relative to it, as the portrait must keep its own pose at rest
(SadTalker's reference pose is relative to the first frame too). The camera is a pinhole with its focal
length equal to the frame width (about 53 degrees across, a phone or webcam) and the face metric through
``EYE_CORNER_CM``. What this costs: a first frame that is far from frontal gives a foreshortened model, and
depths that differ from the generic profile scale pitch and yaw a little (see the tests).

Poses come out in the convention of ``aniportrait.face_mesh.pose_matrix``: Euler angles "xyz" in degrees in
face space (x right, y up, z towards the camera) and a translation in centimetres, rotating about the
centroid of the 13 points.

Blinks: the eye aspect ratio (lid gap over eye width, both eyes averaged), normalised against the video's
open-eye level.
"""

from __future__ import annotations

import numpy as np

EYE_CORNER_CM = 9.0  # outer eye corners about 9 cm apart (as face_mesh assumes for the portrait)
FOCAL_PER_WIDTH = 1.0

# dlib index -> depth towards the camera in cm, relative to the outer eye corners (adult anthropometric
# averages, rounded: the nose tip stands about 4 cm in front of the outer corners, the nose root about 2).
RIGID_DEPTH_CM = {
    27: 2.0, 28: 2.5, 29: 3.1, 30: 3.8,  # nose bridge, root to tip
    31: 1.4, 32: 2.0, 33: 2.4, 34: 2.0, 35: 1.4,  # under the nose, wing to wing
    36: 0.0, 39: 1.0, 42: 1.0, 45: 0.0,  # eye corners: outer, inner, inner, outer
}
RIGID = np.array(list(RIGID_DEPTH_CM))
_DEPTH = np.array(list(RIGID_DEPTH_CM.values()))
_CV_TO_FACE = np.diag([1.0, -1.0, -1.0])  # OpenCV camera (y down, z away) <-> face space (y up, z towards)

# Eye aspect ratio: open when the ratio to the open level is at least OPEN_RATIO, shut at CLOSED_RATIO.
OPEN_RATIO = 0.85  # dlib's lid points jitter by about a tenth of the gap on an open eye: ignore that much
CLOSED_RATIO = 0.3  # dlib never quite closes the lids: the gap stays near a third of the open gap
OPEN_PERCENTILE = 75  # the open level: eyes are open in most frames, blinks take a few percent of them


def camera_matrix(width: int, height: int) -> np.ndarray:
    f = FOCAL_PER_WIDTH * width
    return np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def rigid_model(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """(13, 3) OpenCV camera-space centimetres of the rigid points of the (68, 2) neutral frame."""
    k = camera_matrix(width, height)
    f = k[0, 0]
    gap = max(float(np.linalg.norm(points[45] - points[36])), 1e-6)
    distance = f * EYE_CORNER_CM / gap  # at this distance the outer corners, 1 pixel = EYE_CORNER_CM / gap cm
    z = distance - _DEPTH  # nearer the camera by each point's depth
    image = points[RIGID]
    return np.stack([(image[:, 0] - k[0, 2]) * z / f, (image[:, 1] - k[1, 2]) * z / f, z], axis=1)


def _solve(model: np.ndarray, image: np.ndarray, k: np.ndarray, guess: tuple[np.ndarray, np.ndarray]
           ) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    ok, rvec, tvec = cv2.solvePnP(model, image.astype(np.float64), k, None, guess[0].copy(), guess[1].copy(),
                                  useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:  # LM from the previous pose failed: keep that pose (one frame of lag beats a jump)
        return guess
    return rvec.reshape(3), tvec.reshape(3)


def head_poses(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """(n, 68, 2) landmarks of one video's frames -> (n, 6) poses relative to the first frame (zeros there)."""
    import cv2
    from scipy.spatial.transform import Rotation

    points = np.asarray(points, dtype=np.float64)
    k = camera_matrix(width, height)
    model = rigid_model(points[0], width, height)
    centre = model.mean(0)
    model = model - centre  # rotate about the points' centroid; the neutral pose is then (0, centre)
    guess = (np.zeros(3), centre)
    out = np.zeros((len(points), 6))
    first_rotation = first_translation = None
    for i, frame in enumerate(points):
        guess = _solve(model, frame[RIGID], k, guess)  # each frame starts from the last: smooth, and fast
        rotation = cv2.Rodrigues(guess[0])[0]
        if first_rotation is None:
            first_rotation, first_translation = rotation, guess[1]
        relative = rotation @ first_rotation.T
        out[i, :3] = Rotation.from_matrix(_CV_TO_FACE @ relative @ _CV_TO_FACE).as_euler("xyz", degrees=True)
        out[i, 3:] = _CV_TO_FACE @ (guess[1] - first_translation)
    return out


def eye_aspect_ratio(points: np.ndarray) -> np.ndarray:
    """(n, 68, 2) -> (n,): lid gap over eye width (two gaps per eye), both eyes averaged."""
    p = np.asarray(points, dtype=np.float64)
    ratios = []
    for corner_a, top1, top2, corner_b, bottom2, bottom1 in ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47)):
        gaps = np.linalg.norm(p[:, top1] - p[:, bottom1], axis=1) + np.linalg.norm(p[:, top2] - p[:, bottom2], axis=1)
        ratios.append(gaps / (2 * np.maximum(np.linalg.norm(p[:, corner_a] - p[:, corner_b], axis=1), 1e-6)))
    return np.mean(ratios, axis=0)


def blink_amounts(ratios: np.ndarray) -> np.ndarray:
    """(n,) eye aspect ratios -> (n,) 0 (open) .. 1 (shut), against the video's own open-eye level."""
    open_level = max(float(np.percentile(ratios, OPEN_PERCENTILE)), 1e-6)
    return np.clip((OPEN_RATIO - ratios / open_level) / (OPEN_RATIO - CLOSED_RATIO), 0.0, 1.0)
