"""Template portraits: face found on a real photo, ControlNet inpainting on the tiny models, clean paste-back."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from portrait_studio.errors import InputError
from portrait_studio.models.manager import ModelManager
from portrait_studio.stylize import template as tpl
from portrait_studio.stylize.request import StylizeRequest
from portrait_studio.stylize.service import stylize
from tests.stylize.stylize_helpers import (  # noqa: F401 - one_torch_thread is an autouse fixture
    assert_bit_identical,
    coffee,
    grace_hopper,
    one_torch_thread,
    register_likeness,
    snapshot,
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, tiny_manager: ModelManager):  # noqa: ANN201
    from portrait_studio.registry import LoraRegistry

    root = tmp_path_factory.mktemp("template_registry")
    store = LoraRegistry(root / "registry")
    register_likeness(store, tiny_manager, root / "files", "Grace", reference=grace_hopper(), seed=4)
    return store


def test_template_face_is_repainted_and_the_rest_is_untouched(tiny_manager, tiny_settings, registry) -> None:  # noqa: ANN001
    template = grace_hopper()
    unet = tiny_manager.sd_components()["unet"]
    before = snapshot(unet)
    seen: list[tuple[float, str]] = []
    request = StylizeRequest(prompt="portrait", likeness="Grace", template=template, denoise=0.7, steps=4, seed=2)
    result = stylize(tiny_manager, request, tiny_settings, registry, progress=lambda f, m="": seen.append((f, m)))
    [item] = result.images
    assert item.image.size == template.size
    meta = item.metadata
    assert meta["mode"] == "template" and meta["control"] == "canny" and meta["denoise"] == 0.7
    assert meta["likeness"] == "Grace" and (meta["width"], meta["height"]) == template.size
    left, top, side, _ = meta["face_region"]
    out, src = np.asarray(item.image, dtype=np.int16), np.asarray(template, dtype=np.int16)
    outside = np.ones(src.shape[:2], bool)
    outside[top:top + side, left:left + side] = False
    assert np.array_equal(out[outside], src[outside])  # nothing outside the face crop changes
    # The face itself (Grace Hopper's, around the middle of the crop) was repainted.
    cx, cy = left + side // 2, top + side // 2
    face_patch = (slice(cy - side // 10, cy + side // 10), slice(cx - side // 10, cx + side // 10))
    assert np.abs(out[face_patch] - src[face_patch]).mean() > 5
    assert any("face step" in m for _, m in seen) and any("blend step" in m for _, m in seen)
    assert [f for f, _ in seen] == sorted(f for f, _ in seen)
    assert result.random_weights
    assert_bit_identical(unet, before)
    assert "controlnet_canny:model" in tiny_manager.cache


def test_plain_inpainting_without_controlnet(tiny_manager, tiny_settings, registry) -> None:  # noqa: ANN001
    small = grace_hopper().resize((256, 300))
    result = stylize(tiny_manager, StylizeRequest(prompt="{subject} as a knight", likeness="Grace", template=small,
                                                  control="none", steps=2, seed=3, n=2), tiny_settings, registry)
    assert [i.seed for i in result.images] == [3, 4]
    assert all(i.image.size == (256, 300) and i.metadata["control"] == "none" for i in result.images)
    assert result.images[0].metadata["prompt"] == "sks woman as a knight"


def test_openpose_face_keypoints_alone_and_with_canny(tiny_manager, tiny_settings, registry) -> None:  # noqa: ANN001
    small = grace_hopper().resize((256, 300))
    for control in ("canny+openpose",):  # both ControlNets at once; openpose alone is the same code path
        result = stylize(tiny_manager, StylizeRequest(prompt="portrait", likeness="Grace", template=small,
                                                      control=control, steps=2, seed=5), tiny_settings, registry)
        assert result.images[0].image.size == (256, 300) and result.images[0].metadata["control"] == control
    assert "controlnet_openpose:model" in tiny_manager.cache
    prepared = tpl.prepare_template(tiny_settings, small, 128)
    dots = np.asarray(prepared.pose)[..., 0] > 0
    mask = np.asarray(prepared.mask) > 127
    # dlib's 68 points, drawn as dots inside the face region, and nowhere else.
    count, _ = cv2.connectedComponents(dots.astype(np.uint8))
    assert 30 < count - 1 <= 68 and mask[dots].mean() > 0.9


def test_template_without_a_face_is_refused_before_any_model_runs(tiny_manager, tiny_settings, registry) -> None:  # noqa: ANN001
    seen: list[str] = []
    with pytest.raises(InputError, match="No face was found in the template"):
        stylize(tiny_manager, StylizeRequest(prompt="p", template=coffee(), steps=2), tiny_settings, registry,
                progress=lambda f, m="": seen.append(m))
    assert seen == []  # refused before "loading models"


def test_square_crop_stays_inside_the_photo() -> None:
    assert tpl.square_around(np.array([10.0, 10.0, 60.0, 70.0]), (200, 100)) == (0, 0, 100)
    left, top, side = tpl.square_around(np.array([150.0, 40.0, 190.0, 80.0]), (200, 300))
    assert side == 88 and left + side <= 200 and top >= 0


def test_colour_matching_moves_the_face_to_the_template_statistics() -> None:
    rng = np.random.default_rng(0)
    reference = Image.fromarray((rng.normal(150, 20, (64, 64, 3)).clip(0, 255)).astype(np.uint8))
    bluish = Image.fromarray((rng.normal(60, 5, (64, 64, 3)).clip(0, 255)).astype(np.uint8))
    mask = Image.new("L", (64, 64), 255)
    matched = np.asarray(tpl.match_colours(bluish, reference, mask), dtype=np.float32)
    target = np.asarray(reference, dtype=np.float32)
    assert abs(matched.mean() - target.mean()) < 3
    assert abs(matched.mean() - np.asarray(bluish).mean()) > 50


def test_every_pass_runs_at_least_one_step() -> None:
    assert tpl.steps_for(2, 0.3) == (4, 1)
    assert tpl.steps_for(25, 0.6) == (25, 15)
    assert tpl.steps_for(10, 1.0) == (10, 10)


def test_canny_control_image_marks_edges() -> None:
    image = Image.new("RGB", (64, 64), (0, 0, 0))
    image.paste((255, 255, 255), (16, 16, 48, 48))
    edges = np.asarray(tpl.canny_image(image))
    assert edges.shape == (64, 64, 3) and edges[16:48, 16].max() == 255 and edges[30, 30].max() == 0
