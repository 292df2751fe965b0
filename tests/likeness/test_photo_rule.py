"""The one photo rule: count, files, the check's verdict and what Train takes from it (pure, no models)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

from portrait_studio.config import Settings
from portrait_studio.errors import InputError
from portrait_studio.likeness.jobs import JobManager
from portrait_studio.likeness.photo_rule import (
    KEPT,
    REJECTED,
    PhotoCount,
    PhotoDecision,
    PhotoVerdict,
    file_problem,
    fingerprint,
    photos_to_train,
    rejected_removed,
)
from tests.likeness.helpers import tiny_config

FAKE_WORKER = [sys.executable, str(Path(__file__).with_name("fake_worker.py"))]


def test_one_count_defined_by_the_settings_and_worded_once() -> None:
    rule = PhotoCount.from_settings(Settings(min_photos=5, max_photos=20))
    assert rule.text == "5–20 photos"
    assert rule.shortfall(5) is None and rule.shortfall(20) is None
    assert rule.shortfall(4) == ("Training needs 5–20 photos of one person; 4 usable. Add at least 1 more photo "
                                 "(clear, well lit, only your face).")
    assert "Remove 1" in rule.shortfall(21)
    with pytest.raises(InputError, match="21 photos uploaded; training takes 5–20 photos. Remove 1"):
        rule.check_upload(21)
    with pytest.raises(InputError, match="5–20 photos"):
        rule.check_upload(0)


def test_file_rule(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, max_upload_mb=1)
    (tmp_path / "vector.svg").write_text("<svg/>")
    (tmp_path / "big.jpg").write_bytes(b"\0" * (1024 * 1024 + 1))
    (tmp_path / "ok.jpg").write_bytes(b"\xff\xd8")
    assert file_problem(tmp_path / "vector.svg", settings) == "not a photo (use JPEG, PNG, WebP or HEIC)"
    assert file_problem(tmp_path / "big.jpg", settings) == "larger than 1 MB"
    assert file_problem(tmp_path / "gone.jpg", settings).startswith("the file was not found")
    assert file_problem(tmp_path / "ok.jpg", settings) is None


def _photos(folder: Path, count: int) -> list[Path]:
    paths = []
    for index in range(count):
        path = folder / f"p{index}.png"
        Image.new("RGB", (8, 8), (index * 20, 0, 0)).save(path)
        paths.append(path)
    return paths


def _verdict(paths: list[Path], kept: int, rule: PhotoCount = PhotoCount(5, 20)) -> PhotoVerdict:
    decisions = [PhotoDecision(p.name, fingerprint(p), KEPT if i < kept else REJECTED,
                               "kept" if i < kept else "no face found", kept - i if i < kept else None)
                 for i, p in enumerate(paths)]
    return PhotoVerdict(rule, decisions)


def test_train_takes_exactly_what_the_check_kept_best_first(tmp_path: Path) -> None:
    paths = _photos(tmp_path, 7)
    verdict = PhotoVerdict.from_dict(_verdict(paths, kept=5).to_dict())  # survives the page state round trip
    assert verdict.ready
    assert verdict.summary() == "5 of 7 photos usable for training (5–20 photos needed): these 5 photos will be used."
    assert photos_to_train(verdict, paths) == [paths[4], paths[3], paths[2], paths[1], paths[0]]
    # "Remove rejected" leaves the verdict valid; the rejected files are gone from the box.
    remaining = rejected_removed(verdict, paths)
    assert remaining == paths[:5]
    assert photos_to_train(verdict.without_rejected(), remaining) == photos_to_train(verdict, paths)
    assert verdict.without_rejected().summary().startswith("5 of 5 photos usable")


def test_train_refuses_what_the_check_refused(tmp_path: Path) -> None:
    paths = _photos(tmp_path, 6)
    four = _verdict(paths[:4], kept=4)
    assert not four.ready
    assert four.summary() == ("4 of 4 photos usable for training (5–20 photos needed). Training needs 5–20 photos "
                              "of one person; 4 usable. Add at least 1 more photo (clear, well lit, only your face).")
    with pytest.raises(InputError, match="Training needs 5–20 photos of one person; 4 usable"):
        photos_to_train(four, paths[:4])
    with pytest.raises(InputError, match="Check the photos first"):
        photos_to_train(None, paths)
    with pytest.raises(InputError, match="changed since the check"):  # a photo added after the check
        photos_to_train(_verdict(paths[:5], kept=5), paths)
    with pytest.raises(InputError, match="changed since the check"):  # a kept photo removed
        photos_to_train(_verdict(paths[:5], kept=5), paths[1:5])


def test_job_manager_applies_the_same_rule_and_one_job_per_likeness(tmp_path: Path) -> None:
    job_settings = Settings(home=tmp_path / "home")
    jobs = JobManager(job_settings, worker_command=FAKE_WORKER, autostart=False)
    paths = _photos(tmp_path, 5)
    with pytest.raises(InputError) as refused:
        jobs.submit("alice", "Ada", paths[:4], tiny_config(), consent=True)
    assert str(refused.value) == PhotoCount.from_settings(job_settings).shortfall(4)
    first = jobs.submit("alice", "Ada", paths, tiny_config(), consent=True)
    with pytest.raises(InputError, match=f"A training job for 'Ada' is already waiting in line \\(job {first}\\)"):
        jobs.submit("alice", " ada ", paths, tiny_config(), consent=True)
    jobs.submit("bob", "Ada", paths, tiny_config(), consent=True)  # another owner's likeness
    jobs.cancel("alice", first)
    jobs.submit("alice", "Ada", paths, tiny_config(), consent=True)  # after the first one ended
