"""Alignment maths, head angles, landmark sanity, identity centre and quality ordering."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageFilter

from portrait_studio.faces.align import (
    FFHQ_TEMPLATE_512,
    align_face,
    head_angles,
    landmarks_plausible,
    similarity_transform,
    template,
    transform_points,
)
from portrait_studio.faces.identity import identity_centre
from portrait_studio.faces.quality import measure_quality, resolution_score

from .conftest import grace_hopper


def _rotation(degrees: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    r = math.radians(degrees)
    return np.array([[scale * math.cos(r), -scale * math.sin(r), shift[0]],
                     [scale * math.sin(r), scale * math.cos(r), shift[1]]])


def test_similarity_transform_recovers_a_known_transform() -> None:
    truth = _rotation(17, 0.6, (40, -12))
    source = FFHQ_TEMPLATE_512.copy()
    moved = transform_points(truth, source)
    np.testing.assert_allclose(similarity_transform(source, moved), truth, atol=1e-9)


def test_template_scales_with_crop_size_and_zoom() -> None:
    np.testing.assert_allclose(template(256), FFHQ_TEMPLATE_512 / 2)
    wide = template(512, zoom=0.5)
    full_eye_distance = np.linalg.norm(FFHQ_TEMPLATE_512[1] - FFHQ_TEMPLATE_512[0])
    assert np.linalg.norm(wide[1] - wide[0]) == pytest.approx(full_eye_distance / 2)


def test_aligned_crop_puts_landmarks_on_the_template() -> None:
    rgb = np.asarray(grace_hopper())
    landmarks = transform_points(_rotation(-10, 0.4, (150, 120)), FFHQ_TEMPLATE_512)
    aligned = align_face(rgb, landmarks, crop_size=256)
    assert aligned.image.size == (256, 256)
    np.testing.assert_allclose(transform_points(aligned.matrix, landmarks), template(256), atol=1e-6)
    assert aligned.scale == pytest.approx(0.5 / 0.4)


def test_head_angles_roll_and_yaw() -> None:
    frontal = head_angles(FFHQ_TEMPLATE_512)
    assert abs(frontal.roll) < 0.5 and abs(frontal.yaw) < 3 and frontal.frontal > 0.95
    tilted = head_angles(transform_points(_rotation(20, 1, (0, 0)), FFHQ_TEMPLATE_512))
    assert tilted.roll == pytest.approx(20, abs=0.5)
    assert abs(tilted.yaw) < 3
    turned = FFHQ_TEMPLATE_512.copy()
    turned[2, 0] += 60  # nose far towards the right eye: head turned
    assert abs(head_angles(turned).yaw) > 25
    assert head_angles(turned).frontal < frontal.frontal


def test_landmark_sanity_filter() -> None:
    box = np.array([150.0, 180.0, 360.0, 420.0])
    assert landmarks_plausible(box, FFHQ_TEMPLATE_512)
    upside_down = FFHQ_TEMPLATE_512[[3, 4, 2, 0, 1]]
    assert not landmarks_plausible(box, upside_down)
    squashed = FFHQ_TEMPLATE_512.copy()
    squashed[1] = squashed[0] + [3, 0]  # eyes 3 px apart in a 210 px box
    assert not landmarks_plausible(box, squashed)
    assert not landmarks_plausible(box + 1000, FFHQ_TEMPLATE_512)  # landmarks far outside the box


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.clip(np.dot(a, b), 0, 1))


def test_identity_centre_resists_outsiders() -> None:
    rng = np.random.default_rng(0)
    person, other = rng.normal(size=64), rng.normal(size=64)
    faces = [person + rng.normal(scale=0.3, size=64) for _ in range(6)]
    faces += [other + rng.normal(scale=0.3, size=64) for _ in range(3)]
    faces = [f / np.linalg.norm(f) for f in faces]
    result = identity_centre(faces, _cosine, threshold=0.5)
    assert result.members == [True] * 6 + [False] * 3
    assert _cosine(result.centre, person / np.linalg.norm(person)) > 0.95
    assert min(result.similarities[:6]) > max(result.similarities[6:]) + 0.3
    single = identity_centre(faces[:1], _cosine, 0.5)
    assert single.members == [True]


def test_quality_orders_sharp_soft_and_dark() -> None:
    crop = grace_hopper().crop((130, 100, 400, 370)).resize((512, 512))
    sharp = measure_quality(crop, upscale=1.0)
    soft = measure_quality(crop.filter(ImageFilter.GaussianBlur(3)), upscale=1.0)
    dark = measure_quality(crop.point(lambda v: v * 0.25), upscale=1.0)
    assert sharp.sharpness > soft.sharpness and sharp.overall > soft.overall
    assert dark.exposure < 0.3 < sharp.exposure and dark.brightness < 60
    assert resolution_score(1.5) == 1.0 and resolution_score(8.0) == pytest.approx(0.5)
    flat = measure_quality(Image.new("RGB", (512, 512), (128, 128, 128)), upscale=1.0)
    assert flat.sharpness == 0.0
