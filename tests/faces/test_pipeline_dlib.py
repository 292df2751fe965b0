"""The face pipeline end to end on real photos with the real dlib models (weights from PyPI wheels)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from portrait_studio.config import Settings
from portrait_studio.errors import CancelledError, InputError
from portrait_studio.faces.pipeline import PreparedFaces, prepare_faces
from portrait_studio.faces.report import NotEnoughFacesError
from portrait_studio.faces.similarity import FaceScorer
from portrait_studio.progress import CancelToken

from .conftest import astronaut, coffee, grace_hopper


@pytest.fixture(scope="module")
def prepared(photo_set: Path, tmp_path_factory: pytest.TempPathFactory) -> PreparedFaces:
    home = tmp_path_factory.mktemp("home")
    settings = Settings(home=home, offline=True, face_backend="dlib")
    out = tmp_path_factory.mktemp("runs") / "faces"
    return prepare_faces(sorted(photo_set.iterdir()), out, settings, top_k=6)


def _by_name(result: PreparedFaces) -> dict:
    return {entry.name: entry for entry in result.entries}


def test_other_person_is_rejected_as_a_different_identity(prepared: PreparedFaces) -> None:
    entry = _by_name(prepared)["astronaut.png"]
    assert entry.status == "rejected"
    assert entry.reason.startswith("looks like a different person (similarity")
    kept_similarities = [e.similarity for e in prepared.kept]
    assert entry.similarity < min(kept_similarities) - 0.2


def test_photos_without_a_usable_single_face_are_rejected_with_reasons(prepared: PreparedFaces) -> None:
    entries = _by_name(prepared)
    assert entries["coffee.jpg"].reason == "no face found"
    assert entries["two_faces.jpg"].reason.startswith("two faces of similar size")
    assert entries["grace_very_blurry.jpg"].reason.startswith("very blurry")
    tiny = entries["grace_tiny.png"]
    assert tiny.status == "rejected"
    assert "too small" in tiny.reason and f"face {tiny.face_px} px" in tiny.reason


def test_blurred_copy_ranks_below_its_sharp_twin(prepared: PreparedFaces) -> None:
    entries = _by_name(prepared)
    sharp, soft = entries["grace.jpg"], entries["grace_soft.jpg"]
    assert soft.scores.sharpness < sharp.scores.sharpness
    assert soft.score < sharp.score
    assert soft.rank > sharp.rank


def test_exif_rotated_copy_is_found_upright(prepared: PreparedFaces) -> None:
    entry = _by_name(prepared)["grace_exif.jpg"]
    assert entry.status == "kept"
    assert abs(entry.roll) < 10  # upright after EXIF orientation, not lying on its side
    assert entry.similarity > 0.7


def test_top_k_and_reference_face(prepared: PreparedFaces) -> None:
    assert len(prepared.kept) == 6
    scores = [e.score for e in prepared.kept]
    assert scores == sorted(scores, reverse=True)
    not_best = [e for e in prepared.entries if e.reason.startswith("not among the best 6")]
    assert not_best and all(e.score <= scores[-1] for e in not_best)
    reference = prepared.reference
    assert reference in prepared.kept
    assert reference.angle >= max(e.angle for e in prepared.kept) - 0.05
    assert reference.scores.sharpness >= 0.8
    assert reference.name not in ("grace_soft.jpg", "grace_small.jpg")
    assert np.isclose(np.linalg.norm(prepared.reference_embedding), 1.0, atol=1e-4)


def test_output_layout(prepared: PreparedFaces) -> None:
    out = prepared.out_dir
    crops = sorted((out / "crops").iterdir())
    masks = sorted((out / "masks").iterdir())
    assert [p.name for p in crops] == [p.name for p in masks] == [e.crop_name for e in prepared.kept]
    assert crops[0].name.startswith("01_")
    with Image.open(crops[0]) as crop, Image.open(masks[0]) as mask:
        assert crop.size == (512, 512) and crop.mode == "RGB"
        assert mask.mode == "L"
        coverage = (np.asarray(mask) > 128).mean()
        assert 0.15 < coverage < 0.8
        assert "exif" not in crop.info
    with Image.open(prepared.reference_path) as reference:
        assert reference.size == (512, 512)
    report = json.loads(prepared.report_path.read_text())
    assert report["backend"] == "dlib" and report["random_weights"] is False
    assert report["reference"] == "reference.png"
    assert len(report["inputs"]) == len(prepared.entries)
    for row in report["inputs"]:
        assert {"path", "status", "reason", "score", "similarity", "quality", "angle"} <= row.keys()
        assert row["status"] in ("kept", "rejected") and row["reason"]
    np.testing.assert_allclose(np.load(out / "reference_embedding.npy"), prepared.reference_embedding)
    assert prepared.contact_sheet.size[0] > 500
    assert prepared.contact_sheet_path.is_file()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_missing_restorer_is_reported_not_hidden(photo_set: Path, dlib_settings: Settings, tmp_path: Path) -> None:
    photos = [photo_set / name for name in ("grace.jpg", "grace_flip.jpg", "grace_small.jpg")]
    result = prepare_faces(photos, tmp_path / "out", dlib_settings)
    assert any("not restored" in w and "gfpgan" in w for w in result.warnings)
    assert not any(e.restored for e in result.kept)
    assert prepare_faces(photos, tmp_path / "out2", dlib_settings, restore=False).warnings == []


def test_face_scorer_from_prepared_dir(prepared: PreparedFaces, dlib_settings: Settings) -> None:
    scorer = FaceScorer.from_prepared_dir(prepared.out_dir, dlib_settings)
    same = scorer.score(grace_hopper().rotate(-4))
    other = scorer.score(astronaut())
    assert same > 0.8
    assert other < scorer.backend.same_person_threshold < same
    assert scorer.score(coffee()) == 0.0


def test_too_few_faces_raises_one_error_listing_each_reason(photo_set: Path, dlib_settings: Settings,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "out"
    photos = [photo_set / "coffee.jpg", photo_set / "two_faces.jpg", photo_set / "grace.jpg"]
    with pytest.raises(NotEnoughFacesError) as caught:
        prepare_faces(photos, out, dlib_settings)
    message = str(caught.value)
    assert "Only 1 of 3" in message and "coffee.jpg: no face found" in message
    assert "two_faces.jpg: two faces of similar size" in message and "What to do" in message
    assert isinstance(caught.value, InputError)
    assert caught.value.contact_sheet.size[0] > 0
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_bad_files_are_rejected_not_fatal(photo_set: Path, dlib_settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "drawing.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"></svg>')
    data = (photo_set / "grace.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    photos = [tmp_path / "empty.jpg", tmp_path / "drawing.svg", tmp_path / "cut.jpg"]
    photos += [photo_set / "grace.jpg", photo_set / "grace_flip.jpg", photo_set / "grace_crop.jpg"]
    result = prepare_faces(photos, tmp_path / "out", dlib_settings)
    reasons = {e.name: e.reason for e in result.rejected}
    assert "empty" in reasons["empty.jpg"]
    assert "SVG" in reasons["drawing.svg"]
    assert "truncated" in reasons["cut.jpg"]
    assert len(result.kept) == 3


def test_existing_foreign_folder_is_refused_and_previous_run_replaced(
    photo_set: Path, dlib_settings: Settings, tmp_path: Path
) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    photos = [photo_set / name for name in ("grace.jpg", "grace_flip.jpg", "grace_crop.jpg")]
    with pytest.raises(InputError, match="holds other files"):
        prepare_faces(photos, foreign, dlib_settings)
    assert (foreign / "notes.txt").read_text() == "keep me"
    out = tmp_path / "run"
    first = prepare_faces(photos, out, dlib_settings, white_background=True, crop_size=256)
    crop = np.asarray(first.kept[0].crop)
    assert crop.shape == (256, 256, 3)
    assert crop[:12, :12].min() > 240  # the flag behind her is white now
    assert crop[110:150, 110:150].mean() < 200  # the face is still there
    second = prepare_faces(photos[:2] + [photo_set / "grace_rot8.jpg"], out, dlib_settings, top_k=3)
    assert sorted(p.name for p in (out / "crops").iterdir()) == sorted(e.crop_name for e in second.kept)
    with Image.open(out / "reference.png") as reference:
        assert reference.size == (512, 512)  # the second run replaced the first


def test_cancel_stops_between_photos(photo_set: Path, dlib_settings: Settings, tmp_path: Path) -> None:
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        prepare_faces([photo_set / "grace.jpg"] * 3, tmp_path / "out", dlib_settings, cancel=token)
    assert not (tmp_path / "out").exists()


def test_argument_errors(photo_set: Path, dlib_settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="No photos"):
        prepare_faces([], tmp_path / "out", dlib_settings)
    with pytest.raises(InputError, match="limit is"):
        prepare_faces([photo_set / "grace.jpg"] * 21, tmp_path / "out", dlib_settings)
    with pytest.raises(InputError, match="top_k"):
        prepare_faces([photo_set / "grace.jpg"], tmp_path / "out", dlib_settings, top_k=2, min_keep=3)
