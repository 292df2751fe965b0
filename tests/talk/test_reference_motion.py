"""A reference video's head pose and blinks: the pose fit on synthetic projections with a known pose, the blink
signal on synthetic closed eyes, the resampling to the speech's length, and the errors for unusable videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from portrait_studio.config import Settings, settings_from_env
from portrait_studio.errors import InputError
from portrait_studio.media.video import write_mp4
from portrait_studio.talk import head_pose
from portrait_studio.talk.aniportrait import face_mesh
from portrait_studio.talk.aniportrait.talk import face_points_68
from portrait_studio.talk.reference_motion import (
    POSE_SMOOTH_WINDOW,
    fill_gaps,
    load_reference_motion,
    motion_from_points,
    ping_pong,
    smooth,
)

WIDTH, HEIGHT = 512, 600  # grace_hopper's size: its 68 points are the synthetic face's layout
POSES = np.array([[0, 0, 0, 0, 0, 0], [8, -12, 5, 1.0, -0.5, 2.0], [-15, 20, -10, -2.0, 1.0, -3.0],
                  [3, 30, 0, 0, 0, 0], [0, 0, 25, 0, 0, 0]], dtype=np.float64)


@pytest.fixture(scope="module")
def grace_points(grace_hopper: Image.Image) -> np.ndarray:
    assert grace_hopper.size == (WIDTH, HEIGHT)
    return face_points_68(grace_hopper)


def project_face(points: np.ndarray, pose: np.ndarray, depth_scale: float = 1.0) -> np.ndarray:
    """The (68, 2) image of a 3D face whose frontal image is ``points`` and whose rigid points stand out by
    ``depth_scale`` times the generic depths, turned by ``pose`` with ``face_mesh.pose_matrix`` about the
    rigid points' centroid (the convention the estimate must come back in), through the estimator's camera."""
    k = head_pose.camera_matrix(WIDTH, HEIGHT)
    f = k[0, 0]
    depth = np.zeros(68)
    depth[head_pose.RIGID] = [head_pose.RIGID_DEPTH_CM[i] * depth_scale for i in head_pose.RIGID]
    z = f * head_pose.EYE_CORNER_CM / np.linalg.norm(points[45] - points[36]) - depth
    camera = np.stack([(points[:, 0] - k[0, 2]) * z / f, (points[:, 1] - k[1, 2]) * z / f, z], axis=1)
    centre = camera[head_pose.RIGID].mean(0)
    flip = np.diag([1.0, -1.0, -1.0])  # OpenCV camera axes <-> face_mesh's (y up, z towards the camera)
    m = face_mesh.pose_matrix(pose)
    moved = centre + (camera - centre) @ (flip @ m[:3, :3] @ flip).T + flip @ m[:3, 3]
    return moved[:, :2] / moved[:, 2:] * f + k[:2, 2]


def test_pose_fit_recovers_a_known_pose_in_face_mesh_convention(grace_points: np.ndarray) -> None:
    frames = np.stack([project_face(grace_points, pose) for pose in POSES])
    estimate = head_pose.head_poses(frames, WIDTH, HEIGHT)
    # The model is the truth here (same depths, same camera, first frame neutral), so the only error is where
    # Levenberg-Marquardt stops: its residual is ~1e-10 px on a face ~150 px across, i.e. ~1e-10 degrees.
    # 1e-6 degrees and 1e-6 cm leave room for float64 rounding in the Euler conversion.
    assert np.abs(estimate - POSES).max() < 1e-6


def test_pose_fit_with_a_deeper_or_flatter_face_than_assumed(grace_points: np.ndarray) -> None:
    # A real nose stands out more or less than the generic one. Pitch and yaw are read from how far the nose
    # moves against the eye corners, which scales with its depth: 25 % off in depth misreads them by at most
    # 25 % of the turn (to first order; measured: 18 %). Roll turns the face in the image plane, which depth
    # changes only through perspective (measured: 3 % of the turn).
    for scale in (0.75, 1.25):
        frames = np.stack([project_face(grace_points, pose, scale) for pose in POSES])
        error = np.abs(head_pose.head_poses(frames, WIDTH, HEIGHT) - POSES)
        turn = np.abs(POSES[:, :3]).max(1)
        assert np.all(error[:, :2] <= 0.25 * turn[:, None] + 1e-6), (scale, error)
        assert np.all(error[:, 2] <= 0.05 * turn + 1e-6), (scale, error)
        assert np.all(error[:, 3:] < 1.5)  # cm: a flatter face looks nearer or farther while it turns


def _blinking(points: np.ndarray, closed: dict[int, float], frames: int = 30) -> np.ndarray:
    """``frames`` copies of ``points`` with dlib-sized jitter (0.3 px), the upper lids of frame i brought
    ``closed[i]`` of the way down to the lower lids."""
    rng = np.random.default_rng(0)
    out = points[None] + rng.normal(0, 0.3, (frames, 68, 2))
    for i, share in closed.items():
        for top, bottom in ((37, 41), (38, 40), (43, 47), (44, 46)):
            out[i, top] += share * (out[i, bottom] - out[i, top])
    return out


def test_blink_signal_dips_where_the_eyes_close(grace_points: np.ndarray) -> None:
    closed = {10: 0.5, 11: 0.95, 12: 0.95, 13: 0.5, 24: 1.0}
    amounts = head_pose.blink_amounts(head_pose.eye_aspect_ratio(_blinking(grace_points, closed)))
    open_frames = [i for i in range(30) if i not in closed]
    assert amounts[open_frames].max() < 0.1  # jitter alone is no blink
    assert amounts[[11, 12, 24]].min() > 0.9
    assert 0.2 < amounts[10] < 0.9 and 0.2 < amounts[13] < 0.9  # half shut is a partial blink


def test_motion_fills_faceless_frames_and_loops_a_short_video(grace_points: np.ndarray) -> None:
    poses = POSES[[0, 0, 1, 1, 1, 1]]
    points = np.stack([project_face(grace_points, pose) for pose in poses])
    found = np.array([True, True, False, True, True, True])
    motion = motion_from_points(points, found, WIDTH, HEIGHT, frames=14, name="clip.mp4")
    assert motion.poses.shape == (14, 6) and motion.blinks.shape == (14,)
    assert np.allclose(motion.poses[0], 0.0)  # the portrait starts at its own pose
    assert list(ping_pong(6, 14)) == [0, 1, 2, 3, 4, 5, 4, 3, 2, 1, 0, 1, 2, 3]
    assert np.allclose(motion.poses[6], motion.poses[4]) and np.allclose(motion.poses[10], motion.poses[0])
    assert np.allclose(fill_gaps(np.array([[0.0], [9.0], [2.0], [4.0]]), np.array([False, True, False, True])),
                       [[9.0], [9.0], [6.5], [4.0]])
    assert ping_pong(1, 3).tolist() == [0, 0, 0]


def test_too_few_or_no_faces_are_refused_naming_the_file(grace_points: np.ndarray) -> None:
    points = np.repeat(grace_points[None], 6, axis=0)
    with pytest.raises(InputError, match=r"only 2 of 6 frames of reference video clip\.mp4"):
        motion_from_points(points, np.array([True, True, False, False, False, False]), WIDTH, HEIGHT, 10,
                           "clip.mp4")
    with pytest.raises(InputError, match=r"No face was found in reference video clip\.mp4"):
        motion_from_points(points, np.zeros(6, dtype=bool), WIDTH, HEIGHT, 10, "clip.mp4")


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return settings_from_env({}, home=tmp_path / "home", profile="tiny", max_audio_seconds=2.0)


def test_unusable_videos_are_refused_naming_the_file(tmp_path: Path, settings: Settings) -> None:
    text = tmp_path / "holiday.mp4"
    text.write_text("not a video at all")
    with pytest.raises(InputError, match=r"holiday\.mp4 is not a readable video"):
        load_reference_motion(text, 30, 30, settings)
    grey = write_mp4([np.full((120, 160, 3), 128, np.uint8)] * 10, tmp_path / "wall.mp4", 30)
    with pytest.raises(InputError, match=r"No face was found in reference video wall\.mp4"):
        load_reference_motion(grey, 30, 30, settings)
    long = write_mp4([np.full((64, 64, 3), 128, np.uint8)] * 100, tmp_path / "speech_long.mp4", 30)
    with pytest.raises(InputError, match=r"speech_long\.mp4 lasts 3 s; at most 2 s"):
        load_reference_motion(long, 30, 30, settings)
    with pytest.raises(InputError, match=r"missing\.mp4 not found"):
        load_reference_motion(tmp_path / "missing.mp4", 30, 30, settings)


def test_a_video_of_a_turning_face_gives_its_roll(grace_hopper: Image.Image, tmp_path: Path,
                                                  settings: Settings) -> None:
    # The photo turned in the image plane by known angles (positive = counter-clockwise as seen), which is roll
    # about the face's z axis; dlib's points on the rotated, re-encoded frames are good to a degree or two.
    angles = [0, 4, 8, 12, 8, 4, 0, -4, -8, -12]
    frames = []
    for angle in angles:
        canvas = Image.new("RGB", (400, 400), (120, 120, 120))
        canvas.paste(grace_hopper.resize((256, 300)).rotate(angle, Image.BICUBIC, fillcolor=(120, 120, 120)),
                     (72, 50))
        frames.append(canvas)
    video = write_mp4(frames, tmp_path / "turning.mp4", 30)
    motion = load_reference_motion(video, 12, 30, settings)
    assert motion.poses.shape == (12, 6)
    roll = motion.poses[:10, 2]
    expected = smooth(np.array(angles, dtype=np.float64)[:, None], POSE_SMOOTH_WINDOW)[:, 0]  # as the poses are
    assert np.abs(roll - expected).max() < 1.5
    # no pitch or yaw in the video: what shows is dlib's jitter (about a pixel on a 60 px eye gap; measured 2.6)
    assert np.abs(motion.poses[:10, [0, 1]]).max() < 4.0
    assert motion.poses[10, 2] == pytest.approx(motion.poses[8, 2])  # past the end it plays backwards


def test_blinks_bring_the_upper_lids_down_onto_the_lower_lids(grace_points: np.ndarray) -> None:
    mesh = face_mesh.reference_mesh(grace_points, WIDTH, HEIGHT)
    upper, lower = face_mesh.UPPER_LID, face_mesh.LOWER_LID
    assert mesh.placed[upper].all() and mesh.placed[lower].all()
    image = face_mesh.project(mesh.vertices[None], mesh.transform, np.zeros((1, 6)), WIDTH, HEIGHT)[0]
    gap = image[lower] - image[upper]
    assert np.all(gap[:, 1] > 0) and np.all(np.abs(gap[:, 0]) < gap[:, 1] + 3)  # pairs face each other
    closed = face_mesh.close_eyelids(np.repeat(mesh.vertices[None], 3, 0), np.array([0.0, 0.5, 1.0]))
    assert np.array_equal(closed[0], mesh.vertices)
    assert np.allclose(closed[1, upper], (mesh.vertices[upper] + mesh.vertices[lower]) / 2)
    assert np.allclose(closed[2, upper], mesh.vertices[lower])
    others = np.setdiff1d(np.arange(face_mesh.MESH_POINTS), upper)
    assert np.array_equal(closed[2, others], mesh.vertices[others])  # only the upper lids move
