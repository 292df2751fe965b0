"""The other Stylize and Animate modes, and Talk with a reference video, through the running app's API."""

from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from tests.app.test_app_client import stylize_args


@pytest.fixture(scope="module")
def portrait(tmp_path_factory) -> Path:
    from matplotlib import cbook

    path = tmp_path_factory.mktemp("portrait") / "grace.png"
    Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB").save(path)
    return path


@pytest.fixture(scope="module")
def client(tiny_app) -> Client:
    return Client(tiny_app.url, verbose=False)


def test_template_portrait_repaints_inside_the_photo(client, portrait) -> None:
    args = list(stylize_args(prompt="oil painting portrait", seed=3))
    args[9] = handle_file(str(portrait))  # template photo
    gallery, notes = client.predict(*args, api_name="/stylize")
    with Image.open(gallery[0]["image"]) as image, Image.open(portrait) as template:
        assert image.size == template.size  # template mode keeps the photo's frame
    assert "random" in notes.lower()


def test_a_template_without_a_face_is_refused(client, tmp_path) -> None:
    blank = tmp_path / "wall.png"
    Image.new("RGB", (256, 256), (120, 140, 160)).save(blank)
    args = list(stylize_args())
    args[9] = handle_file(str(blank))
    with pytest.raises(Exception, match="face"):
        client.predict(*args, api_name="/stylize")


def test_preset_without_prompt(client) -> None:
    args = list(stylize_args(prompt=""))
    args[2] = "watercolor"
    gallery, _ = client.predict(*args, api_name="/stylize")
    assert len(gallery) == 1


def test_photo_to_anime(client, portrait) -> None:
    picture, notes = client.predict(handle_file(str(portrait)), "face_paint_512_v2", "full", api_name="/anime")
    with Image.open(picture) as image:
        assert image.mode == "RGB" and max(image.size) == 512
    assert "random" in notes.lower()


def test_animation_from_a_portrait(client, portrait) -> None:
    mp4, gif, frames_zip, notes = client.predict(
        "", 0.8, "", "smiling", "", handle_file(str(portrait)), 0.6, ["zoom-in"], 0.8, 4, 8, 2, 5.0, 1, "none",
        False, "video2video", None, 1.0, api_name="/animate",
    )
    video_path = mp4["video"] if isinstance(mp4, dict) else mp4
    assert Path(video_path).suffix == ".mp4" and Path(frames_zip).suffix == ".zip"
    assert "4 frames at 8 fps" in notes


def test_portrait_to_end_image_with_sparsectrl_keyframes(client, portrait, tmp_path) -> None:
    import json
    import zipfile

    end = tmp_path / "end.png"
    with Image.open(portrait) as image:
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(end)
    mp4, gif, frames_zip, notes = client.predict(
        "", 0.8, "", "smiling", "", handle_file(str(portrait)), 0.6, [], 0.8, 4, 8, 2, 5.0, 1, "none",
        False, "sparsectrl", handle_file(str(end)), 0.9, api_name="/animate",
    )
    with zipfile.ZipFile(frames_zip) as archive:
        metadata = json.loads(archive.read("metadata.json"))
    assert (metadata["mode"], metadata["keyframes"], metadata["keyframe_strength"]) == ("sparsectrl", [0, 3], 0.9)
    assert "4 frames at 8 fps" in notes


def test_camera_motion_in_sparsectrl_mode_is_refused_with_the_way_out(client, portrait) -> None:
    with pytest.raises(Exception, match="video2video"):
        client.predict(
            "", 0.8, "", "smiling", "", handle_file(str(portrait)), 0.6, ["zoom-in"], 0.8, 4, 8, 2, 5.0, 1, "none",
            False, "sparsectrl", None, 1.0, api_name="/animate",
        )


def _talk_args(portrait: Path, speech: Path, engine: str, reference: Path | None) -> tuple:
    """Positional inputs of /talk: portrait, likeness, speech, still, enhance, expression, pose style, mode,
    size, engine, steps, reference video."""
    return (handle_file(str(portrait)), "", handle_file(str(speech)), False, False, 1.0, 0, "crop", 256, engine, 1,
            handle_file(str(reference)) if reference else None)


def test_talk_with_a_reference_video(client, portrait, tmp_path) -> None:
    import numpy as np

    from portrait_studio.media.video import write_mp4
    from tests.talk._audio_helpers import tone, write_pcm_wav

    speech = write_pcm_wav(tmp_path / "speech.wav", tone(0.55, 16_000), 16_000)
    with Image.open(portrait) as image:
        face = image.convert("RGB").resize((256, 300))
    frames = [np.asarray(face.rotate(2 * i, fillcolor=(120, 120, 120))) for i in range(8)]
    reference = write_mp4(frames, tmp_path / "nodding.mp4", 30)
    for engine, frames in (("sadtalker", 13), ("aniportrait", 16)):  # 25 and 30 fps
        video, notes = client.predict(*_talk_args(portrait, speech, engine, reference), api_name="/talk")
        assert f"{frames} frames" in notes
        assert Path(video["video"] if isinstance(video, dict) else video).suffix == ".mp4"
    text = tmp_path / "holiday.mp4"
    text.write_text("not a video")
    with pytest.raises(Exception, match=r"holiday\.mp4 is not a readable video"):
        client.predict(*_talk_args(portrait, speech, "sadtalker", text), api_name="/talk")
