"""Request checks, motion parsing and frame interpolation (no models involved)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from portrait_studio.animate.frames import fit_portrait, interpolate
from portrait_studio.animate.request import AnimateRequest, Likeness, parse_keyframes, parse_motion
from portrait_studio.errors import InputError

_IMG = Image.new("RGB", (8, 8))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prompt": "  "}, "prompt is empty"),
        ({"frames": 1}, "Frames must be between 2 and 64"),
        ({"frames": 65}, "Frames must be between 2 and 64"),
        ({"fps": 0}, "Frames per second"),
        ({"steps": 0}, "Steps must be between"),
        ({"guidance": -1}, "Guidance"),
        ({"width": 100}, "width must be a multiple of 8"),
        ({"height": 2048}, "height must be a multiple of 8"),
        ({"motions": [("spin", 1.0)]}, "Unknown camera motion 'spin'"),
        ({"motions": [("zoom-in", 1.0), ("zoom-in", 0.5)]}, "listed twice"),
        ({"motions": [("pan-left", 3.0)]}, "Weight of motion 'pan-left'"),
        ({"interpolate": "magic"}, "Unknown interpolation"),
        ({"init_image": _IMG, "portrait_mode": "video2video", "strength": 0.01}, "Strength must be between"),
        ({"init_image": _IMG, "portrait_mode": "video2video", "steps": 2, "strength": 0.4}, "below one step"),
        ({"init_image": _IMG, "portrait_mode": "morph"}, "Unknown portrait mode 'morph'"),
        ({"end_image": _IMG}, "needs a start portrait"),
        ({"init_image": _IMG, "end_image": _IMG, "portrait_mode": "video2video"}, "only in the sparsectrl"),
        ({"init_image": _IMG, "motions": [("zoom-in", 1.0)]}, "Camera motions belong to the v1.5.2"),
        ({"init_image": _IMG, "fast": True}, "Fast mode .* has no SparseCtrl"),
        ({"init_image": _IMG, "frames": 33}, "SparseCtrl animates up to 32 frames"),
        ({"init_image": _IMG, "keyframe_strength": 2.5}, "Keyframe strength must be between 0 and 2"),
        ({"init_image": _IMG, "keyframes": (0, 5)}, "one keyframe index per keyframe image"),
        ({"init_image": _IMG, "end_image": _IMG, "frames": 8, "keyframes": (0, 8)}, "distinct frames between 0 and 7"),
        ({"init_image": _IMG, "end_image": _IMG, "keyframes": (3, 3)}, "distinct frames"),
        ({"seed": 2**32}, "Seed must be between"),
    ],
)
def test_bad_requests_name_the_field(changes: dict, message: str) -> None:
    request = AnimateRequest(**{"prompt": "a portrait", **changes})
    with pytest.raises(InputError, match=message):
        request.validate(512)


def test_valid_request_is_normalised(tmp_path) -> None:
    lora = tmp_path / "lora.safetensors"
    lora.write_bytes(b"x")
    request = AnimateRequest(
        " a portrait ", likeness=Likeness(lora, 0.7, "Anna", "annaperson"), motions={"zoom-in": 0.8, "pan-left": 0.0}
    ).validate(512)
    assert request.prompt == "annaperson, a portrait"
    assert request.motions == [("zoom-in", 0.8)]  # weight 0 is dropped
    assert (request.width, request.height) == (512, 512) and 0 <= request.seed < 2**32
    described = request.describe()
    assert described["likeness"] == "Anna" and str(tmp_path) not in str(described)
    assert AnimateRequest("annaperson smiling", likeness=Likeness(lora, 1, trigger="annaperson")).validate(64).prompt \
        == "annaperson smiling"


def test_missing_likeness_file_is_an_input_error(tmp_path) -> None:
    with pytest.raises(InputError, match="LoRA file of likeness 'Bob' is missing"):
        AnimateRequest("a portrait", likeness=Likeness(tmp_path / "gone.safetensors", name="Bob")).validate(64)


def test_sparsectrl_keyframes_default_to_first_and_last_frame() -> None:
    start = AnimateRequest("a portrait", init_image=_IMG, frames=8).validate(64)
    assert (start.mode, start.keyframe_indices()) == ("sparsectrl", (0,))
    both = AnimateRequest("a portrait", init_image=_IMG, end_image=_IMG, frames=8).validate(64)
    assert both.keyframe_indices() == (0, 7)
    assert both.describe()["keyframes"] == [0, 7] and both.describe()["strength"] is None
    assert AnimateRequest("a portrait", frames=8).validate(64).mode == "txt2vid"
    assert parse_keyframes("0, 12") == (0, 12)
    with pytest.raises(InputError, match="separated by commas"):
        parse_keyframes("first,last")


def test_parse_motion() -> None:
    assert parse_motion("zoom-in:0.8") == ("zoom-in", 0.8)
    assert parse_motion(" tilt-up ") == ("tilt-up", 1.0)
    with pytest.raises(InputError, match="must be a number"):
        parse_motion("zoom-in:lots")


def _textured(shift: int) -> np.ndarray:
    from skimage import data

    image = data.astronaut()[100:228, 150:278]  # a smooth, detailed face crop
    return np.ascontiguousarray(np.roll(image, shift, axis=1))


def test_interpolation_inserts_midpoints() -> None:
    frames = [np.full((4, 4, 3), value, np.uint8) for value in (0, 100, 201)]
    doubled = interpolate(frames, "blend")
    assert [int(f[0, 0, 0]) for f in doubled] == [0, 50, 100, 151, 201]
    assert interpolate(frames, "none") == frames
    assert len(interpolate(frames[:1], "flow")) == 1


def test_flow_interpolation_beats_blending_on_a_camera_pan() -> None:
    start, end, truth = _textured(0), _textured(6), _textured(3)
    flow_mid = interpolate([start, end], "flow")[1].astype(float)
    blend_mid = interpolate([start, end], "blend")[1].astype(float)
    inner = (slice(8, -8), slice(8, -8))  # ignore the wrapped border of np.roll
    flow_error = np.abs(flow_mid[inner] - truth[inner]).mean()
    blend_error = np.abs(blend_mid[inner] - truth[inner]).mean()
    assert flow_error < 0.7 * blend_error


def test_fit_portrait_crops_to_the_video_aspect() -> None:
    tall = Image.new("RGBA", (300, 600), (10, 20, 30, 255))
    fitted = fit_portrait(tall, 64, 32)
    assert fitted.size == (64, 32) and fitted.mode == "RGB"


def test_a_likeness_reference_face_is_a_portrait_to_animate(tmp_path) -> None:
    from types import SimpleNamespace

    reference = tmp_path / "reference.png"
    Image.new("RGBA", (20, 30), (200, 10, 10, 255)).save(reference)
    record = SimpleNamespace(lora_path=tmp_path / "l.safetensors", name="Ada", trigger="adaperson",
                             random_weights=False, reference_path=reference)
    portrait = Likeness.from_record(record).reference_portrait()
    assert portrait.size == (20, 30) and portrait.mode == "RGB"
    without = Likeness.from_record(SimpleNamespace(**{**vars(record), "reference_path": None}))
    with pytest.raises(InputError, match="'Ada' has no reference face picture: upload a portrait"):
        without.reference_portrait()
