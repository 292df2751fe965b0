"""The anime service end to end on the tiny (random, real-architecture) generators and real dlib faces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from portrait_studio.config import Settings
from portrait_studio.errors import CancelledError, InputError
from portrait_studio.models.locator import ModelLocator
from portrait_studio.progress import CancelToken
from portrait_studio.stylize import anime
from portrait_studio.stylize.anime import anime_portrait, full_frame_size
from portrait_studio.stylize.animegan_net import generator_from_state_dict, read_state_dict

SIZE = 128  # small enough to keep each generator pass well under a second on this CPU


@pytest.fixture(scope="module")
def settings(tiny_settings: Settings) -> Settings:
    return tiny_settings  # the session's temporary home, tiny profile (tests/conftest.py)


@pytest.fixture(scope="module")
def grace() -> Image.Image:
    from matplotlib import cbook

    return Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")


@pytest.fixture(scope="module")
def coffee() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.coffee())


def test_face_mode_aligns_the_face_and_reports_random_weights(settings: Settings, grace: Image.Image) -> None:
    steps: list[tuple[float, str]] = []
    result = anime_portrait(grace, settings, mode="face", size=SIZE, progress=lambda f, m="": steps.append((f, m)))
    assert result.image.size == (SIZE, SIZE) and result.image.mode == "RGB"
    assert result.random_weights is True and result.metadata["random_weights"] is True
    assert any("random-weight" in w for w in result.warnings)
    assert result.metadata["style"] == "face_paint_512_v2" and result.metadata["mode"] == "face"
    x0, y0, x1, y1 = result.metadata["face_box"]
    assert 120 < x0 < x1 < 420 and 100 < y0 < y1 < 380  # Grace Hopper's face in the 512x600 photo
    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    again = anime_portrait(grace, settings, mode="face", size=SIZE)
    assert np.array_equal(np.asarray(again.image), np.asarray(result.image))


def test_full_mode_equals_the_network_on_the_reference_normalisation(settings: Settings,
                                                                    coffee: Image.Image) -> None:
    result = anime_portrait(coffee, settings, style="paprika", mode="full", size=SIZE)
    assert result.image.size == full_frame_size(600, 400, SIZE) == (128, 88)
    # Recompute by hand: LANCZOS resize, [0, 255] -> [-1, 1], generator, back to [0, 255].
    path = ModelLocator(settings).path("animegan_paprika")
    net = generator_from_state_dict(read_state_dict(path))
    pixels = np.asarray(coffee.resize((128, 88), Image.Resampling.LANCZOS), dtype=np.float32)
    with torch.inference_mode():
        out = net(torch.from_numpy(pixels / 127.5 - 1).permute(2, 0, 1)[None])[0]
    expected = ((out.clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy()
    assert np.abs(np.asarray(result.image, dtype=np.float32) - expected).max() <= 1
    assert np.asarray(result.image).std() > 1  # a real picture, not a constant


def test_face_mode_refuses_a_picture_without_a_face(settings: Settings, coffee: Image.Image) -> None:
    with pytest.raises(InputError, match="No face found.*mode 'full'"):
        anime_portrait(coffee, settings, mode="face", size=SIZE)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"style": "ghibli"}, "Unknown anime style 'ghibli'"),
        ({"mode": "half"}, "Unknown anime mode 'half'"),
        ({"size": 32}, "Size must be between 64 and 2048"),
    ],
)
def test_bad_options_are_input_errors(settings: Settings, grace: Image.Image, kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        anime_portrait(grace, settings, **kwargs)


def test_bad_pictures_are_input_errors(settings: Settings) -> None:
    with pytest.raises(InputError, match="at least 16 pixels"):
        anime_portrait(Image.new("RGB", (8, 300)), settings, mode="full")
    with pytest.raises(InputError, match="limit is 1,000"):
        anime_portrait(Image.new("RGB", (100, 100)), settings.replace(max_image_pixels=1000), mode="full")
    with pytest.raises(InputError, match="Expected a picture"):
        anime_portrait(np.zeros((64, 64, 3), np.uint8), settings)  # type: ignore[arg-type]


def test_transparent_pictures_are_flattened_on_white(settings: Settings) -> None:
    rgba = Image.new("RGBA", (96, 64), (0, 0, 0, 0))
    result = anime_portrait(rgba, settings, mode="full", size=96)
    assert result.image.size == (96, 64)


def test_cancel_stops_before_the_generator_runs(settings: Settings, grace: Image.Image) -> None:
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        anime_portrait(grace, settings, mode="full", size=SIZE, cancel=token)


def test_generators_are_cached_in_the_manager_cache(settings: Settings, coffee: Image.Image) -> None:
    from portrait_studio.models.manager import ModelManager

    manager = ModelManager(settings)  # a fresh cache, so the load and hit counts are this test's own
    first = anime_portrait(coffee, settings, style="celeba_distill", mode="full", size=64, manager=manager)
    assert "animegan_celeba_distill:generator" in manager.cache
    anime_portrait(coffee, settings, style="celeba_distill", mode="full", size=64, manager=manager)
    assert manager.cache.stats.loads == 1 and manager.cache.stats.hits >= 1
    assert not manager.cache.is_locked("animegan_celeba_distill:generator")
    anime.clear_cache(settings)
    plain = anime_portrait(coffee, settings, style="celeba_distill", mode="full", size=64)
    assert np.array_equal(np.asarray(plain.image), np.asarray(first.image))


def test_face_mode_runs_the_network_on_the_ffhq_aligned_largest_face(settings: Settings,
                                                                    grace: Image.Image) -> None:
    from portrait_studio.faces.align import align_face
    from portrait_studio.faces.backends import get_face_backend

    result = anime_portrait(grace, settings, style="face_paint_512_v2", mode="face", size=96)
    faces = get_face_backend(settings).detect(np.asarray(grace))
    crop = align_face(np.asarray(grace), max(faces, key=lambda f: f.area).landmarks5, crop_size=96).image
    net = generator_from_state_dict(read_state_dict(ModelLocator(settings).path("animegan_face_paint_512_v2")))
    with torch.inference_mode():
        out = net(torch.from_numpy(np.asarray(crop, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None])[0]
    expected = ((out.clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy()
    assert np.abs(np.asarray(result.image, dtype=np.float32) - expected).max() <= 1
