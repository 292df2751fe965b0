"""A reference video -> head pose and blinks per output frame, to drive a talking head.

The video is decoded at the engine's frame rate (ffmpeg repeats or drops frames; that also evens out variable
rates), scaled so its long side is at most ``DETECT_SIDE``, and only as far as the speech lasts. In every
frame dlib finds the 68 points of the largest face; ``head_pose`` turns them into a pose relative to the
first frame with a face and an eye-openness ratio. Frames without a face take their values from the nearest
frames that have one (linear in between). The poses are smoothed lightly (dlib's points jitter by about a
pixel); blinks are not (a blink lasts three or four frames and smoothing would flatten it). When the video is
shorter than the speech it plays forwards and backwards (a ping-pong loop never jumps); when it is longer,
the rest is not read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from portrait_studio.config import Settings
from portrait_studio.errors import InputError
from portrait_studio.progress import CancelToken, ProgressFn, no_progress
from portrait_studio.talk import head_pose

if TYPE_CHECKING:  # dlib loads its models on first use: import it only when a video is read
    from portrait_studio.faces.dlib_backend import DlibBackend
    from portrait_studio.media.video import VideoHeader

DETECT_SIDE = 640  # dlib's HOG finds faces from about 80 px: a face a sixth of the frame wide still counts
MIN_FACE_SHARE = 0.5  # at least half of the frames need a face, or the motion would be mostly made up
POSE_SMOOTH_WINDOW = 5


@dataclass(frozen=True)
class ReferenceMotion:
    poses: np.ndarray  # (frames, 6): face_mesh.pose_matrix convention, relative to the video's first face
    blinks: np.ndarray  # (frames,): 0 open .. 1 shut


def check_reference_video(path: Path, settings: Settings, name: str | None = None) -> VideoHeader:
    """Size and length limits, from the header only (cheap: the UI runs it on upload). Returns the header
    (its duration is 0 when the container does not say)."""
    from portrait_studio.media.video import read_header

    path = Path(path)
    name = name or path.name
    if path.is_file() and path.stat().st_size > settings.max_upload_mb * 1024 * 1024:
        raise InputError(f"Reference video {name} is larger than {settings.max_upload_mb} MB: use a shorter clip.")
    header = read_header(path, name)
    # More than the longest speech can never be used: refuse it rather than read it.
    if header.duration > settings.max_audio_seconds + 1:
        raise InputError(f"Reference video {name} lasts {header.duration:.0f} s; at most "
                         f"{settings.max_audio_seconds:.0f} s is used (the longest speech): trim it.")
    return header


def _largest_face_points(backend: DlibBackend, frame: np.ndarray) -> np.ndarray | None:
    faces = [f for f in backend.detect(frame) if f.points is not None]
    return np.asarray(max(faces, key=lambda f: f.area).points, dtype=np.float64) if faces else None


def fill_gaps(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """(n, k) values, (n,) bool: rows not found are interpolated from the nearest found rows (held at the ends)."""
    index = np.arange(len(found))
    return np.stack([np.interp(index, index[found], values[found, j]) for j in range(values.shape[1])], axis=1)


def ping_pong(count: int, frames: int) -> np.ndarray:
    """Indices into ``count`` source frames for ``frames`` output frames: 0..count-1, back to 0, and so on."""
    if count == 1:
        return np.zeros(frames, dtype=int)
    period = 2 * (count - 1)
    k = np.arange(frames) % period
    return np.where(k < count, k, period - k)


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over rows; the window shrinks at the ends (so the first row stays near neutral)."""
    half = window // 2
    out = np.empty_like(values)
    for i in range(len(values)):
        lo, hi = max(0, i - half), min(len(values), i + half + 1)
        reach = min(i - lo, hi - 1 - i)  # symmetric, so a lone end row is not pulled towards one side
        out[i] = values[i - reach: i + reach + 1].mean(0)
    return out


def check_faces(found: np.ndarray, name: str) -> None:
    """Enough frames with a face, or an error naming the file."""
    count = int(found.sum())
    if count == 0:
        raise InputError(f"No face was found in reference video {name}: use a clip where one face is clearly "
                         "visible, facing the camera.")
    if count < max(2, MIN_FACE_SHARE * len(found)):
        raise InputError(f"A face was found in only {count} of {len(found)} frames of reference video {name}: "
                         "use a clip where the face stays in view and faces the camera.")


def fit_motion(poses: np.ndarray, ratios: np.ndarray, found: np.ndarray, frames: int) -> ReferenceMotion:
    """Per video frame (n, 6) relative poses and (n,) eye aspect ratios, valid where ``found`` -> ``frames``
    output frames: gaps filled, poses smoothed, ratios as blink amounts, looped back and forth."""
    poses = smooth(fill_gaps(np.asarray(poses, dtype=np.float64), found), POSE_SMOOTH_WINDOW)
    blinks = head_pose.blink_amounts(fill_gaps(np.asarray(ratios, dtype=np.float64)[:, None], found)[:, 0])
    order = ping_pong(len(found), frames)
    return ReferenceMotion(poses[order], blinks[order])


def motion_from_points(points: np.ndarray, found: np.ndarray, width: int, height: int, frames: int,
                       name: str) -> ReferenceMotion:
    """(n, 68, 2) landmarks (rows where ``found`` is False are ignored) -> motion for ``frames`` output frames,
    poses in ``face_mesh.pose_matrix``'s convention."""
    check_faces(found, name)
    poses = np.zeros((len(found), 6))
    poses[found] = head_pose.head_poses(points[found], width, height)
    ratios = np.zeros(len(found))
    ratios[found] = head_pose.eye_aspect_ratio(points[found])
    return fit_motion(poses, ratios, found, frames)


@dataclass(frozen=True)
class VideoFaces:
    points: np.ndarray  # (n, 68, 2) per decoded frame; zeros where no face was found
    found: np.ndarray  # (n,) bool
    width: int
    height: int
    measured: np.ndarray | None  # (n, k) what ``measure`` returned per frame with a face (zeros elsewhere)


def scan_video(path: Path, frames: int, fps: float, settings: Settings,
               measure: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None, name: str | None = None,
               progress: ProgressFn = no_progress, cancel: CancelToken | None = None) -> VideoFaces:
    """The 68 points of the largest face in each of the first ``frames`` frames at ``fps``; ``measure(frame,
    points)`` is called on every frame with a face (a second estimate that needs the pixels)."""
    from portrait_studio.faces.dlib_backend import DlibBackend
    from portrait_studio.media.video import read_frames

    path = Path(path)
    name = name or path.name
    header = check_reference_video(path, settings, name)
    backend = DlibBackend()
    expected = max(1, min(frames, int(header.duration * fps)) if header.duration else frames)
    points, found, measured, size = [], [], [], (0, 0)
    decoded = read_frames(path, fps, DETECT_SIDE, seconds=(frames + 1) / fps, name=name, header=header)
    for i, frame in enumerate(decoded):
        if i >= frames:
            break
        if cancel is not None:
            cancel.raise_if_cancelled()
        if i % 10 == 0:
            progress(min(i / expected, 1.0), f"reading the reference video: frame {i + 1}/{expected}")
        size = (frame.shape[1], frame.shape[0])
        face = _largest_face_points(backend, frame)
        found.append(face is not None)
        points.append(face if face is not None else np.zeros((68, 2)))
        if measure is not None:
            measured.append(measure(frame, face) if face is not None else None)
    if not points:
        raise InputError(f"Reference video {name} has no frames: use a video with a visible face.")
    extra = None
    if measure is not None and any(m is not None for m in measured):
        width = len(next(m for m in measured if m is not None))
        extra = np.stack([m if m is not None else np.zeros(width) for m in measured])
    return VideoFaces(np.stack(points), np.array(found), size[0], size[1], extra)


def load_reference_motion(path: Path, frames: int, fps: float, settings: Settings, name: str | None = None,
                          progress: ProgressFn = no_progress, cancel: CancelToken | None = None) -> ReferenceMotion:
    """Head poses (``face_mesh.pose_matrix`` convention) and blink amounts for ``frames`` output frames at
    ``fps`` from the video at ``path``."""
    name = name or Path(path).name
    faces = scan_video(path, frames, fps, settings, name=name, progress=progress, cancel=cancel)
    return motion_from_points(faces.points, faces.found, faces.width, faces.height, frames, name)
