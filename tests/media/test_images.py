"""Image intake: every mode becomes RGB, every bad file is refused with a reason, nothing leaks EXIF."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from portrait_studio.errors import InputError
from portrait_studio.media.images import heif_supported, load_image, reencode, save_image


def _bytes(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _gradient(width: int = 64, height: int = 48) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=-1))


def test_plain_jpeg_decodes_to_rgb(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    _gradient().save(path, quality=95)
    loaded = load_image(path)
    assert loaded.image.mode == "RGB" and loaded.image.size == (64, 48)
    assert loaded.format == "JPEG" and loaded.warnings == [] and loaded.scale == 1.0


def test_exif_orientation_is_applied_and_exif_gps_dropped(tmp_path: Path) -> None:
    upright = _gradient(60, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # viewer must rotate 90 degrees clockwise
    exif[0x010F] = "PhoneMaker"
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 24.0)  # GPS latitude
    path = tmp_path / "rotated.jpg"
    upright.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif, quality=95)
    loaded = load_image(path)
    assert loaded.image.size == (60, 40) and loaded.original_size == (60, 40)
    assert np.abs(np.asarray(loaded.image, np.int16) - np.asarray(upright, np.int16)).mean() < 6
    saved = save_image(loaded.image, tmp_path / "clean.jpg")
    with Image.open(saved) as reopened:
        assert len(reopened.getexif()) == 0 and "exif" not in reopened.info
    assert b"PhoneMaker" not in reencode(loaded.image, "JPEG")


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("CMYK", "JPEG"), ("L", "PNG"), ("1", "PNG"), ("LA", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("I;16", "PNG"),
     ("I", "TIFF"), ("F", "TIFF"), ("RGBA", "WEBP")],
)
def test_every_mode_becomes_rgb(mode: str, fmt: str) -> None:
    if mode == "I;16":
        source = Image.fromarray((np.arange(64 * 48).reshape(48, 64) * 21).astype(np.uint16))
    elif mode in ("I", "F"):
        source = Image.fromarray(np.linspace(0, 200, 64 * 48).reshape(48, 64).astype(np.float32)).convert(mode)
    else:
        source = _gradient().convert(mode)
    loaded = load_image(_bytes(source, fmt), name=f"x.{fmt.lower()}")
    assert loaded.image.mode == "RGB" and loaded.image.size == (64, 48)
    pixels = np.asarray(loaded.image)
    assert pixels.std() > 5  # a real conversion, not a blank image


def test_transparency_is_flattened_on_white() -> None:
    rgba = Image.new("RGBA", (20, 10), (255, 0, 0, 255))
    rgba.paste((0, 0, 0, 0), (10, 0, 20, 10))
    loaded = load_image(_bytes(rgba, "PNG"), name="sticker.png")
    pixels = np.asarray(loaded.image)
    assert tuple(pixels[5, 2]) == (255, 0, 0) and tuple(pixels[5, 15]) == (255, 255, 255)
    assert any("white" in w for w in loaded.warnings)


def test_sixteen_bit_keeps_its_range() -> None:
    ramp = Image.fromarray(np.tile(np.linspace(0, 65535, 64), (8, 1)).astype(np.uint16))
    pixels = np.asarray(load_image(_bytes(ramp, "PNG"), name="scan.png").image)
    assert pixels[0, 0, 0] == 0 and pixels[0, -1, 0] == 255


def test_animated_image_gives_first_frame_with_warning() -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = _bytes(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    loaded = load_image(data, name="wave.gif")
    assert tuple(np.asarray(loaded.image)[8, 8]) == (255, 0, 0)
    assert any("animated" in w and "first frame" in w for w in loaded.warnings)


def test_large_jpeg_decodes_at_reduced_size(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    _gradient(4000, 3000).save(path, quality=85)
    loaded = load_image(path, min_short_side=1024)
    assert loaded.image.size == (2000, 1500)  # JPEG draft: 1/2 scale still >= 1024 on the short side
    assert loaded.original_size == (4000, 3000) and loaded.scale == 0.5
    assert load_image(path).image.size == (4000, 3000)


def test_pixel_cap_refuses_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bomb.png"
    Image.new("1", (5000, 4000)).save(path)  # 20 megapixels in a few kilobytes
    decoded: list[bool] = []
    original_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(True) or original_load(self))
    with pytest.raises(InputError, match="20 megapixels"):
        load_image(path, max_pixels=10_000_000)
    assert decoded == []


def test_pillow_bomb_error_becomes_input_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    Image.new("1", (3000, 3000)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)  # Pillow raises above 2x this
    with pytest.raises(InputError, match="too many pixels"):
        load_image(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>', "SVG"),
        (b"<!DOCTYPE html><html><body><img src='x.jpg'></body></html>", "web page"),
        (b"<note>hello</note>", "XML"),
        (b"%PDF-1.7\n...", "PDF"),
        (b"just some text, not a picture\n" * 10, "not an image"),
        (bytes(range(256)) * 8, "not an image"),
    ],
)
def test_non_images_are_refused_with_a_reason(content: bytes, expected: str) -> None:
    with pytest.raises(InputError, match=expected):
        load_image(content, name="upload")


def test_truncated_jpeg_is_refused(tmp_path: Path) -> None:
    data = _bytes(_gradient(400, 300), "JPEG", quality=95)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        load_image(path)


def test_missing_and_oversized_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "nope.jpg")
    path = tmp_path / "big.png"
    path.write_bytes(_bytes(_gradient(), "PNG"))
    with pytest.raises(InputError, match="limit"):
        load_image(path, max_bytes=100)


def test_unsupported_format_is_named() -> None:
    data = _bytes(_gradient(), "ICO")
    with pytest.raises(InputError, match="ICO"):
        load_image(data, name="favicon.ico")


def test_heic_is_decoded_when_pillow_heif_is_installed() -> None:
    if not heif_supported():
        pytest.skip("pillow-heif not installed")
    import pillow_heif

    try:
        data = _bytes(_gradient(), "HEIF", quality=90)
    except (KeyError, OSError, ValueError) as exc:  # libheif built without an encoder
        pytest.skip(f"no HEIF encoder: {exc}")
    assert pillow_heif.__version__
    loaded = load_image(data, name="iphone.heic")
    assert loaded.format == "HEIF" and loaded.image.size == (64, 48) and loaded.image.mode == "RGB"


def test_avif_is_decoded_or_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import features

    if features.check("avif"):
        loaded = load_image(_bytes(_gradient(), "AVIF", quality=90), name="web.avif")
        assert loaded.format == "AVIF" and loaded.image.mode == "RGB"
    fake_avif = b"\x00\x00\x00\x1cftypavif" + bytes(64)
    monkeypatch.setattr("portrait_studio.media.images.avif_supported", lambda: False)
    with pytest.raises(InputError, match="AVIF"):
        load_image(fake_avif, name="web.avif")
