"""A reference video for the SadTalker engine: head pose from the 3DMM reconstruction of every frame.

As SadTalker's ``--ref_pose``: every frame is cropped where the video's first face is (its preprocessing
crops a video once, from the first frame), aligned to the 5-point template with that frame's own landmarks,
and reconstructed by face_3drecon; the pose coefficients (3 angles in radians, 3 translations) are taken
relative to the first frame and added to the portrait's own pose (``using_refpose``). One difference:
SadTalker adds them on top of the pose it predicts from speech; here they replace it, as for AniPortrait, so
the head does what the video does.

Blinks: the eye aspect ratio of dlib's points (``head_pose.blink_amounts``) becomes the expression network's
blink input, the eye-closing ratio it was trained with. (SadTalker's ``--ref_eyeblink`` instead hands the
expression network the video's whole expression coefficients, mouth included.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from portrait_studio.config import Settings
from portrait_studio.errors import InputError
from portrait_studio.progress import CancelToken, ProgressFn, no_progress
from portrait_studio.talk import head_pose
from portrait_studio.talk.config import EXP_DIM
from portrait_studio.talk.config import FPS as SADTALKER_FPS
from portrait_studio.talk.preprocess import CropBox, FacePoints, align_for_recon, crop_box, recon_coefficients
from portrait_studio.talk.reference_motion import ReferenceMotion, check_faces, fit_motion, scan_video

POSE_SLICE = slice(EXP_DIM, EXP_DIM + 6)  # angles then translation, in the 73 source coefficients


def load_reference_pose_coefficients(path: Path, frames: int, settings: Settings, net: torch.nn.Module,
                                     device: torch.device, progress: ProgressFn = no_progress,
                                     cancel: CancelToken | None = None) -> ReferenceMotion:
    """(frames, 6) pose coefficients relative to the video's first face, and (frames,) blink amounts."""
    name = Path(path).name
    box: list[CropBox] = []

    def measure(frame: np.ndarray, points: np.ndarray) -> np.ndarray:
        face = FacePoints.from_68(points)
        if not box:
            try:
                box.append(crop_box(face, frame.shape[1], frame.shape[0]))
            except InputError as exc:
                raise InputError(f"The face in reference video {name} is too small or too close to the edge: "
                                 "use a clip with a larger, centred face.") from exc
        crop = Image.fromarray(frame).crop((box[0].left, box[0].top, box[0].right, box[0].bottom))
        local = face.moved(np.array([box[0].left, box[0].top], dtype=np.float64), np.ones(2))
        aligned, trans = align_for_recon(crop, local.five)
        return recon_coefficients(net, aligned, trans, device)[POSE_SLICE].astype(np.float64)

    faces = scan_video(path, frames, SADTALKER_FPS, settings, measure, name, progress, cancel)
    check_faces(faces.found, name)
    first = int(np.argmax(faces.found))
    measured = faces.measured if faces.measured is not None else np.zeros((len(faces.found), 6))
    poses = np.where(faces.found[:, None], measured - measured[first], 0.0)
    ratios = np.zeros(len(faces.found))
    ratios[faces.found] = head_pose.eye_aspect_ratio(faces.points[faces.found])
    return fit_motion(poses, ratios, faces.found, frames)
