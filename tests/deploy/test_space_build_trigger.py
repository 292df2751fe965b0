"""When CI emulates a Space build: only when what a Space installs changed (tests/deploy/space_build.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import REPO
from tests.deploy import space_build


def _copy(tmp_path: Path) -> Path:
    for name in ("README.md", "requirements.txt"):
        shutil.copy2(REPO / name, tmp_path / name)
    return tmp_path


def test_fingerprint_follows_requirements_and_front_matter_not_comments(tmp_path: Path) -> None:
    repo = _copy(tmp_path)
    before = space_build.fingerprint(repo)
    requirements = repo / "requirements.txt"
    requirements.write_text("# a reworded comment\n\n" + requirements.read_text().replace("\n", "  # note\n", 1))
    assert space_build.fingerprint(repo) == before

    requirements.write_text(requirements.read_text().replace("scipy==", "scipy>="))
    changed_pin = space_build.fingerprint(repo)
    assert changed_pin != before

    (repo / "pre-requirements.txt").write_text("pip>=25\n")
    with_pre = space_build.fingerprint(repo)
    assert with_pre != changed_pin

    readme = repo / "README.md"
    readme.write_text(readme.read_text().replace("# Portrait Studio\n", "# Portrait Studio, renamed\n", 1))
    assert space_build.fingerprint(repo) == with_pre  # prose outside the front matter does not count
    readme.write_text(readme.read_text().replace('python_version: "3.11"', 'python_version: "3.12"', 1))
    assert space_build.fingerprint(repo) != with_pre


def test_fingerprint_ignores_the_test_extras(tmp_path: Path) -> None:
    repo = _copy(tmp_path)
    shutil.copy2(REPO / "requirements-test.txt", repo / "requirements-test.txt")
    before = space_build.fingerprint(repo)
    extras = repo / "requirements-test.txt"
    extras.write_text(extras.read_text().replace("pytest==", "pytest>="))
    assert space_build.fingerprint(repo) == before  # the build installs no test tool
    extras.write_text(extras.read_text().replace("spaces==", "spaces>="))
    assert space_build.fingerprint(repo) != before  # but it installs spaces, as ZeroGPU does


def test_verified_compares_with_the_recorded_fingerprint(tmp_path: Path, monkeypatch) -> None:
    repo = _copy(tmp_path)
    monkeypatch.setattr(space_build, "VERIFIED_FILE", tmp_path / "space_build_verified.txt")
    assert not space_build.verified(repo)  # nothing recorded: CI builds
    space_build.record_verified(repo)
    assert space_build.verified(repo)
    (repo / "requirements.txt").write_text((repo / "requirements.txt").read_text() + "pyyaml==6.0.3\n")
    assert not space_build.verified(repo)
