"""Portrait -> square face crop for the renderer + the source's 3DMM coefficients.

1. Landmarks from the face backend (68 points when it has them, else its 5 points).
2. A square crop framed by the eyes and mouth (the FFHQ-style quad), resized to the render size.
3. A 224 px alignment of that crop to a 5-point 3D template (least-squares scaled orthographic pose),
   fed to the reconstruction net -> 64 expression + 3 angle + 3 translation coefficients, plus the
   3 alignment parameters (scale, tx, ty) that the full-image mapping network also reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from portrait_studio.config import Settings
from portrait_studio.errors import InputError
from portrait_studio.talk.nets.recon import ANGLE_SLICE, EXP_SLICE, TRANS_SLICE, FaceReconNet

# The 3D template of the five alignment points (eyes, nose tip, mouth corners) of the 3DMM landmark
# set used by Deep3DFaceRecon / SadTalker, in model units.
TEMPLATE_5 = np.array(
    [
        [-0.31148657, 0.29036078, 0.13377953],
        [0.30979887, 0.28972036, 0.13179526],
        [0.0032535, -0.04617932, 0.55244243],
        [-0.25216928, -0.38133916, 0.22405732],
        [0.2484662, -0.38128236, 0.22235769],
    ]
)
RECON_SIZE = 224
RECON_SCALE = 102.0  # template units -> pixels of the 224 crop
CROP_OUTPUT_SIZE = 512  # framing reference size (only decides when very large images are shrunk)


@dataclass(frozen=True)
class FacePoints:
    """The landmarks the crop and the alignment need, in image pixels (x, y)."""

    eye_left: np.ndarray  # centre of all eye-contour points
    eye_right: np.ndarray
    mouth_left: np.ndarray
    mouth_right: np.ndarray
    five: np.ndarray  # (5, 2): eye centres from the eye corners, nose tip, mouth corners

    @classmethod
    def from_68(cls, p: np.ndarray) -> FacePoints:
        five = np.stack([(p[36] + p[39]) / 2, (p[42] + p[45]) / 2, p[30], p[48], p[54]])
        return cls(p[36:42].mean(0), p[42:48].mean(0), p[48], p[54], five)

    @classmethod
    def from_5(cls, p: np.ndarray) -> FacePoints:
        return cls(p[0], p[1], p[3], p[4], np.asarray(p, dtype=np.float64))

    def moved(self, offset: np.ndarray, scale: np.ndarray) -> FacePoints:
        def f(a: np.ndarray) -> np.ndarray:
            return (a - offset) * scale

        return FacePoints(f(self.eye_left), f(self.eye_right), f(self.mouth_left), f(self.mouth_right), f(self.five))


@dataclass(frozen=True)
class CropBox:
    """Where the face crop sits in the original image (pixels, right/bottom exclusive)."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def size(self) -> tuple[int, int]:
        return self.right - self.left, self.bottom - self.top


@dataclass
class SourceFace:
    crop: Image.Image  # square, render size
    box: CropBox
    coeffs: np.ndarray  # (73,) float32: exp 64, angle 3, trans 3, crop params 3
    aligned: Image.Image  # the 224 px recon input (for inspection)


def find_face(image: Image.Image, settings: Settings) -> FacePoints:
    """Landmarks of the largest face; a clear InputError when there is none."""
    from portrait_studio.faces.backends import get_face_backend

    rgb = np.asarray(image.convert("RGB"))
    faces = get_face_backend(settings).detect(rgb)
    if not faces:
        raise InputError(
            "No face was found in the portrait. Use a photo where one face is clearly visible, "
            "facing the camera, at least about 100 pixels wide."
        )
    face = max(faces, key=lambda f: f.area)
    if face.points is not None and len(face.points) == 68:
        return FacePoints.from_68(np.asarray(face.points, dtype=np.float64))
    return FacePoints.from_5(np.asarray(face.landmarks5, dtype=np.float64))


def crop_box(points: FacePoints, width: int, height: int) -> CropBox:
    """The square quad around eyes and mouth (sized from the eye distance and the eye-mouth distance)."""
    eye_avg = (points.eye_left + points.eye_right) / 2
    eye_to_eye = points.eye_right - points.eye_left
    eye_to_mouth = (points.mouth_left + points.mouth_right) / 2 - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x = x / max(np.hypot(*x), 1e-6) * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    qsize = np.hypot(*x) * 2
    # Very large photos are framed on a shrunk copy in the reference pipeline; shrink the maths the same way.
    shrink = int(np.floor(qsize / CROP_OUTPUT_SIZE * 0.5))
    shrink = shrink if shrink > 1 else 1
    quad, qsize = quad / shrink, qsize / shrink
    w, h = int(np.rint(width / shrink)), int(np.rint(height / shrink))
    border = max(int(np.rint(qsize * 0.1)), 3)
    outer = (
        max(int(np.floor(quad[:, 0].min())) - border, 0), max(int(np.floor(quad[:, 1].min())) - border, 0),
        min(int(np.ceil(quad[:, 0].max())) + border, w), min(int(np.ceil(quad[:, 1].max())) + border, h),
    )
    q = (quad - np.array(outer[:2]) + 0.5).flatten()
    lx, ly = max(min(q[0], q[2]), 0), max(min(q[1], q[7]), 0)
    rx, ry = min(max(q[4], q[6]), w), min(max(q[3], q[5]), h)
    box = np.array([outer[0] + int(lx), outer[1] + int(ly), outer[0] + int(rx), outer[1] + int(ry)]) * shrink
    left, top = max(int(box[0]), 0), max(int(box[1]), 0)
    right, bottom = min(int(box[2]), width), min(int(box[3]), height)
    if right - left < 16 or bottom - top < 16:
        raise InputError("The face in the portrait is too small or too close to the edge; use a larger, centred face.")
    return CropBox(left, top, right, bottom)


def _pose_fit(points2d: np.ndarray, points3d: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares scaled orthographic projection 2D ~ s R X + t; returns (t, s)."""
    n = points2d.shape[0]
    a = np.zeros((2 * n, 8))
    a[0::2, 0:3] = points3d
    a[0::2, 3] = 1
    a[1::2, 4:7] = points3d
    a[1::2, 7] = 1
    k = np.linalg.lstsq(a, points2d.reshape(-1), rcond=None)[0]
    scale = (np.linalg.norm(k[0:3]) + np.linalg.norm(k[4:7])) / 2
    return np.array([k[3], k[7]]), float(scale)


def align_for_recon(crop: Image.Image, five: np.ndarray) -> tuple[Image.Image, np.ndarray]:
    """Scale and shift ``crop`` so the five points meet the template -> (224 px image, [w, h, s, tx, ty])."""
    w0, h0 = crop.size
    pts = np.asarray(five, dtype=np.float64).copy()
    pts[:, 1] = h0 - 1 - pts[:, 1]  # the template's y axis points up
    t, s = _pose_fit(pts, TEMPLATE_5)
    s = RECON_SCALE / s
    w, h = int(w0 * s), int(h0 * s)
    left = int(w / 2 - RECON_SIZE / 2 + (t[0] - w0 / 2) * s)
    up = int(h / 2 - RECON_SIZE / 2 + (h0 / 2 - t[1]) * s)
    aligned = crop.resize((w, h), Image.BICUBIC).crop((left, up, left + RECON_SIZE, up + RECON_SIZE))
    return aligned, np.array([w0, h0, s, t[0], t[1]], dtype=np.float64)


@torch.no_grad()
def recon_coefficients(
    net: FaceReconNet, aligned: Image.Image, trans_params: np.ndarray, device: torch.device
) -> np.ndarray:
    """(73,) source coefficients: expression, angles, translation, alignment (s, tx, ty)."""
    x = torch.from_numpy(np.asarray(aligned.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    full = net(x.to(device)).float().cpu().numpy()[0]
    return np.concatenate([full[EXP_SLICE], full[ANGLE_SLICE], full[TRANS_SLICE], trans_params[2:]]).astype(np.float32)


def prepare_source(
    image: Image.Image, points: FacePoints, size: int, net: FaceReconNet, device: torch.device
) -> SourceFace:
    """Crop, resize to ``size`` and measure the source face."""
    image = image.convert("RGB")
    box = crop_box(points, *image.size)
    crop = image.crop((box.left, box.top, box.right, box.bottom)).resize((size, size), Image.LANCZOS)
    scale = np.array([size / box.size[0], size / box.size[1]])
    local = points.moved(np.array([box.left, box.top], dtype=np.float64), scale)
    aligned, trans = align_for_recon(crop, local.five)
    return SourceFace(crop, box, recon_coefficients(net, aligned, trans, device), aligned)
