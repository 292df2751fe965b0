"""Real photos from installed packages (matplotlib's grace_hopper, scikit-image's astronaut and coffee)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageFilter

from portrait_studio.config import Settings


def grace_hopper() -> Image.Image:
    from matplotlib import cbook

    return Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")


def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def coffee() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.coffee())


def save_exif_rotated(image: Image.Image, path: Path) -> None:
    """Store the pixels turned a quarter, with the EXIF tag (6) that tells viewers to turn them back."""
    exif = Image.Exif()
    exif[0x0112] = 6
    image.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif)


def two_faces() -> Image.Image:
    face = grace_hopper()
    canvas = Image.new("RGB", (face.width * 2, face.height), (90, 90, 90))
    canvas.paste(face, (0, 0))
    canvas.paste(face.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (face.width, 0))
    return canvas


@pytest.fixture(scope="session")
def photo_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Grace Hopper variants plus the tricky cases, as files a user would upload."""
    folder = tmp_path_factory.mktemp("photos")
    grace = grace_hopper()
    grace.save(folder / "grace.jpg", quality=95)
    grace.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "grace_flip.jpg", quality=95)
    grace.rotate(8, resample=Image.Resampling.BICUBIC).save(folder / "grace_rot8.jpg", quality=95)
    grace.rotate(-6, resample=Image.Resampling.BICUBIC).save(folder / "grace_rot-6.png")
    grace.crop((40, 50, 490, 580)).save(folder / "grace_crop.jpg", quality=95)
    grace.filter(ImageFilter.GaussianBlur(1.5)).save(folder / "grace_soft.jpg", quality=95)
    grace.filter(ImageFilter.GaussianBlur(7)).save(folder / "grace_very_blurry.jpg", quality=95)
    grace.resize((256, 300), Image.Resampling.LANCZOS).save(folder / "grace_small.jpg", quality=95)
    grace.resize((110, 129), Image.Resampling.LANCZOS).save(folder / "grace_tiny.png")
    save_exif_rotated(grace, folder / "grace_exif.jpg")
    astronaut().save(folder / "astronaut.png")
    coffee().save(folder / "coffee.jpg", quality=95)
    two_faces().save(folder / "two_faces.jpg", quality=95)
    return folder


@pytest.fixture()
def dlib_settings(tmp_path: Path) -> Settings:
    """Published-weights profile, offline: dlib's wheel weights are real, GFPGAN is absent."""
    return Settings(home=tmp_path / "home", offline=True, face_backend="dlib")
