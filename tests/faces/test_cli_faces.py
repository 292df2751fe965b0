"""`python -m portrait_studio faces prepare`: exit codes, JSON report, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from portrait_studio.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("PORTRAIT_STUDIO_HOME", str(home))
    monkeypatch.setenv("PORTRAIT_STUDIO_OFFLINE", "1")
    monkeypatch.setenv("PORTRAIT_STUDIO_FACE_BACKEND", "dlib")
    return home


def test_prepare_json_success(photo_set: Path, env: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    photos = [str(photo_set / n) for n in ("grace.jpg", "grace_flip.jpg", "grace_crop.jpg", "coffee.jpg")]
    out = tmp_path / "out"
    code = main(["faces", "prepare", *photos, "--out", str(out), "--json", "--no-restore"])
    captured = capsys.readouterr()
    assert code == 0
    report = json.loads(captured.out)
    assert [row["path"] for row in report["inputs"]] == photos
    statuses = {Path(row["path"]).name: row["status"] for row in report["inputs"]}
    assert statuses == {
        "grace.jpg": "kept", "grace_flip.jpg": "kept", "grace_crop.jpg": "kept", "coffee.jpg": "rejected"
    }
    assert report["reference"] == "reference.png"
    for name in ("report.json", "reference.png", "reference_embedding.npy", "contact_sheet.png"):
        assert (out / name).is_file()
    assert json.loads((out / "report.json").read_text()) == report


def test_prepare_failure_exits_2_with_one_line(photo_set: Path, tmp_path: Path) -> None:
    env = dict(os.environ, PORTRAIT_STUDIO_HOME=str(tmp_path / "home"), PORTRAIT_STUDIO_OFFLINE="1",
               PYTHONPATH=str(ROOT))
    (tmp_path / "empty.jpg").write_bytes(b"")
    command = [sys.executable, "-m", "portrait_studio", "faces", "prepare", str(photo_set / "coffee.jpg"),
               str(tmp_path / "empty.jpg"), str(tmp_path / "missing.png"), "--out", str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if not line.startswith("[")]
    assert len(lines) == 1 and lines[0].startswith("error: Only 0 of 3 photos")
    assert "coffee.jpg: no face found" in lines[0] and "empty.jpg: the file is empty" in lines[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
