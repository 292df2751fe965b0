"""The photo check on real photos (dlib): bad files, another person, near-duplicates, and that the training
job's own face preparation keeps exactly what the check kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from portrait_studio.config import Settings
from portrait_studio.faces.backends import get_face_backend
from portrait_studio.faces.duplicates import MIN_DUPLICATE_SIMILARITY, MIN_PIXEL_CORRELATION, pixel_correlation
from portrait_studio.faces.pipeline import prepare_faces
from portrait_studio.likeness.photo_check import TRAINING_TOP_K, check_photos
from portrait_studio.likeness.photo_rule import PhotoCount, photos_to_train
from tests.faces.conftest import astronaut, grace_hopper

COPIES = {
    "grace.jpg": lambda g: g,
    "mirror.jpg": ImageOps.mirror,
    "rot6.jpg": lambda g: g.rotate(6, resample=Image.Resampling.BICUBIC, fillcolor=(255, 255, 255)),
    "rot12.jpg": lambda g: g.rotate(-12, resample=Image.Resampling.BICUBIC, fillcolor=(255, 255, 255)),
    "crop.jpg": lambda g: g.crop((20, 20, 500, 580)),
    "small.jpg": lambda g: g.resize((g.width * 3 // 4, g.height * 3 // 4)),
    "blur.jpg": lambda g: g.filter(ImageFilter.GaussianBlur(1.2)),
    "dark.jpg": lambda g: ImageEnhance.Brightness(g).enhance(0.6),
}


@pytest.fixture(scope="module")
def upload(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("upload")
    grace = grace_hopper()
    paths = []
    for name, make in COPIES.items():
        make(grace).save(folder / name, quality=92)
        paths.append(folder / name)
    (folder / "notes.jpg").write_text("not a photo, renamed")
    (folder / "vector.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    Image.new("RGB", (300, 300), (120, 140, 160)).save(folder / "wall.png")
    astronaut().save(folder / "astronaut.png")
    return [*paths, folder / "notes.jpg", folder / "vector.svg", folder / "wall.png", folder / "astronaut.png"]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(home=tmp_path_factory.mktemp("home"), offline=True, face_backend="dlib")


@pytest.fixture(scope="module")
def checked(upload: list[Path], settings: Settings, tmp_path_factory: pytest.TempPathFactory):
    return check_photos(upload, settings, tmp_path_factory.mktemp("work") / "check")


def test_the_verdict_says_why_for_every_file(checked, upload: list[Path]) -> None:
    verdict = checked.verdict
    reasons = {d.name: d.reason for d in verdict.rejected}
    assert set(reasons) == {"notes.jpg", "vector.svg", "wall.png", "astronaut.png"}
    assert "not an image" in reasons["notes.jpg"]
    assert reasons["vector.svg"] == "not a photo (use JPEG, PNG, WebP or HEIC)"
    assert reasons["wall.png"] == "no face found"
    assert reasons["astronaut.png"].startswith("looks like a different person")
    assert [d.name for d in verdict.decisions] == [p.name for p in upload]  # upload order
    assert verdict.ready and verdict.summary().startswith("8 of 12 photos usable for training (5–20 photos needed)")
    assert checked.contact_sheet.width > 0


def test_copies_of_one_shot_are_flagged_too_similar(checked, settings: Settings) -> None:
    assert [sorted(group) for group in checked.verdict.duplicates] == [sorted(COPIES)]
    assert any(w.startswith("too similar: ") for w in checked.verdict.warnings)
    # The measured margins behind the thresholds (figures in faces/duplicates.py).
    kept = {e.name: e for e in checked.entries if e.crop is not None}
    backend = get_face_backend(settings)
    original = kept["grace.jpg"]
    for name in COPIES:
        assert pixel_correlation(original.crop, kept[name].crop) >= MIN_PIXEL_CORRELATION
        assert backend.similarity(original.embedding, kept[name].embedding) >= MIN_DUPLICATE_SIMILARITY
    other = kept["astronaut.png"]
    assert pixel_correlation(original.crop, other.crop) < 0.7
    assert backend.similarity(original.embedding, other.embedding) < MIN_DUPLICATE_SIMILARITY


def test_the_training_job_keeps_exactly_what_the_check_kept(checked, upload: list[Path], settings: Settings,
                                                            tmp_path: Path) -> None:
    chosen = photos_to_train(checked.verdict, upload)
    assert [p.name for p in chosen] == [d.name for d in checked.verdict.kept]
    # What the worker runs on the submitted photos (likeness.worker.prepare_dataset).
    prepared = prepare_faces(chosen, tmp_path / "dataset", settings, top_k=TRAINING_TOP_K,
                             min_keep=PhotoCount.from_settings(settings).minimum, restore=False)
    assert sorted(e.name for e in prepared.kept) == sorted(p.name for p in chosen)


def test_too_few_usable_photos_is_the_same_sentence_as_train(upload: list[Path], settings: Settings,
                                                             tmp_path: Path) -> None:
    four = [upload[0], upload[1], upload[8], upload[10]]  # two photos, a text file, a wall
    verdict = check_photos(four, settings, tmp_path / "check").verdict
    assert not verdict.ready
    assert verdict.shortfall == PhotoCount.from_settings(settings).shortfall(2)
    with pytest.raises(Exception, match="Training needs 5–20 photos of one person; 2 usable"):
        photos_to_train(verdict, four)
