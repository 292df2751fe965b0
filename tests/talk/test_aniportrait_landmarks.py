"""The reference face's mesh from dlib's 68 points on real photos, its projection, and the landmark images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from portrait_studio.talk.aniportrait import face_mesh, landmark_image, speech
from portrait_studio.talk.aniportrait.talk import face_points_68


def _photo(name: str) -> Image.Image:
    if name == "grace_hopper":
        from matplotlib import cbook

        return Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    from skimage import data

    return Image.fromarray(data.astronaut())


@pytest.fixture(scope="module", params=["grace_hopper", "astronaut"])
def photo_points(request: pytest.FixtureRequest) -> tuple[Image.Image, np.ndarray]:
    image = _photo(request.param)
    return image, face_points_68(image)


def test_every_drawn_vertex_is_placed_on_the_face(photo_points: tuple[Image.Image, np.ndarray]) -> None:
    image, points = photo_points
    mesh_points, placed = face_mesh.mesh_points_from_68(points)
    assert placed[landmark_image.DRAWN_VERTICES].all()
    lo, hi = points.min(0), points.max(0)
    margin = 0.25 * (hi - lo)
    drawn = mesh_points[landmark_image.DRAWN_VERTICES]
    assert np.all(drawn >= lo - margin) and np.all(drawn <= hi + margin)  # temples may leave dlib's hull a little
    # MediaPipe numbering: the subject's right eye (33 outer, 133 inner) is on the image's left
    assert mesh_points[33, 0] < mesh_points[133, 0] < mesh_points[362, 0] < mesh_points[263, 0]
    assert mesh_points[13, 1] <= mesh_points[14, 1]  # inner upper lip not below the inner lower lip (closed: equal)
    assert mesh_points[0, 1] < mesh_points[13, 1] and mesh_points[17, 1] > mesh_points[14, 1]


def test_unposed_mesh_projects_back_onto_the_photo(photo_points: tuple[Image.Image, np.ndarray]) -> None:
    image, points = photo_points
    mesh = face_mesh.reference_mesh(points, *image.size)
    expected, placed = face_mesh.mesh_points_from_68(points)
    back = face_mesh.project(mesh.vertices[None], mesh.transform, np.zeros((1, 6)), *image.size)[0]
    assert np.abs(back[placed] - expected[placed]).max() < 1e-6
    eye_gap = np.linalg.norm(mesh.vertices[33, :2] - mesh.vertices[263, :2])
    assert eye_gap == pytest.approx(face_mesh.EYE_CORNER_CM, rel=0.1)  # metric, as audio2mesh's offsets
    assert mesh.transform[2, 3] < -10  # the face sits in front of the camera (which looks down -z)


def test_head_pose_turns_and_moves_the_projection(photo_points: tuple[Image.Image, np.ndarray]) -> None:
    image, points = photo_points
    mesh = face_mesh.reference_mesh(points, *image.size)
    poses = np.array([[0, 0, 0, 0, 0, 0], [0, 0, 0, 2.0, 0, 0], [0, 0, 10.0, 0, 0, 0]], dtype=np.float64)
    frames = face_mesh.project(np.repeat(mesh.vertices[None], 3, 0), mesh.transform, poses, *image.size)
    shift = frames[1, mesh.placed] - frames[0, mesh.placed]
    assert np.all(shift[:, 0] > 0) and np.abs(shift[:, 1]).max() < 0.05 * np.abs(shift[:, 0]).max() + 1e-6
    roll = frames[2] - frames[0]
    left, right = 33, 263
    assert np.sign(roll[left, 1]) != np.sign(roll[right, 1])  # rolling about z lifts one eye, lowers the other


def test_mouth_offsets_open_the_drawn_mouth(photo_points: tuple[Image.Image, np.ndarray]) -> None:
    image, points = photo_points
    size = 512  # the reference's canvas size: no resize, so the region colours stay exact
    scale = np.array([size / image.width, size / image.height])
    mesh = face_mesh.reference_mesh(points * scale, size, size)
    opened = mesh.vertices.copy()
    opened[[14, 317, 402, 318, 324, 87, 178, 88, 95], 1] -= 1.0  # lower inner lip 1 cm down
    frames = face_mesh.project(np.stack([mesh.vertices, opened]), mesh.transform, np.zeros((2, 6)), size, size)
    closed_image, open_image = landmark_image.draw_frames(frames, size, size)
    assert closed_image.shape == (size, size, 3) and closed_image.dtype == np.uint8
    inner_rgb = [(30, 100, 100), (200, 100, 120)]  # inner bottom-left and inner top-left runs (BGR reversed)

    def lowest_inner_row(img: np.ndarray) -> int:
        return int(np.nonzero(np.any([np.all(img == c, axis=2) for c in inner_rgb], axis=0))[0].max())

    assert lowest_inner_row(open_image) > lowest_inner_row(closed_image) + 3


def test_drawing_uses_the_reference_colours_and_skips_points_outside() -> None:
    points = np.full((face_mesh.MESH_POINTS, 2), 50.0)
    points[61], points[146] = (10.0, 10.0), (90.0, 90.0)  # one edge of the outer bottom-left lip run
    image = landmark_image.draw(points, 100, 100)
    colours = {tuple(c) for c in image.reshape(-1, 3)} - {(0, 0, 0)}
    assert (20, 180, 10) in colours  # BGR (10, 180, 20) as RGB
    points[146] = (150.0, 90.0)  # now outside the frame: that edge is not drawn
    after = landmark_image.draw(points, 100, 100)
    assert not np.any(np.all(after == (20, 180, 10), axis=2)[20:80, 20:80])


@pytest.mark.parametrize(("frames", "chunks"), [
    (40, [(0, 40)]), (150, [(0, 150)]), (151, [(0, 151)]), (330, [(0, 150), (150, 180)]),
    (450, [(0, 150), (150, 150), (300, 150)]),
])
def test_pose_chunks_join_the_remainder_to_the_last_chunk(frames: int, chunks: list[tuple[int, int]]) -> None:
    assert speech.pose_chunks(frames) == chunks


def test_pose_smoothing_is_a_centred_moving_average() -> None:
    poses = np.zeros((9, 6))
    poses[4] = 7.0
    smoothed = speech.smooth(poses)
    assert np.allclose(smoothed[:, 0], [0, 7 / 5, 7 / 6, 1, 1, 1, 7 / 6, 7 / 5, 0])  # the window shrinks at the ends
    assert speech.frame_count(16_000) == 30 and speech.frame_count(15_999) == 29


def test_mesh_offsets_are_added_to_the_reference_times_the_expression_scale() -> None:
    import torch

    class FixedOffsets(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the device and dtype

        def forward(self, audio: torch.Tensor, frames: int) -> torch.Tensor:
            return torch.arange(frames * 1404, dtype=torch.float32).reshape(1, frames, 1404)

    reference = np.random.default_rng(0).normal(size=(468, 3))
    out = speech.mesh_sequence(FixedOffsets(), torch.zeros(1, 1600), 3, reference, scale=0.5)
    expected = reference[None] + 0.5 * np.arange(3 * 1404).reshape(3, 468, 3)
    assert out.shape == (3, 468, 3) and np.allclose(out, expected)
