from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from portrait_studio.likeness import checkpoints as ck


def _fill(marker: str):
    def fill(folder: Path) -> dict:
        (folder / ck.LORA_FILE).write_bytes(b"lora " + marker.encode())
        (folder / ck.RESUME_STATE).write_bytes(b"state")
        return {"scores": [0.5]}

    return fill


def test_checkpoint_appears_only_when_complete(tmp_path: Path) -> None:
    first = ck.write_checkpoint(tmp_path, 100, _fill("a"))
    assert first.path.name == "step-000100" and first.manifest["complete"] is True
    assert [c.step for c in ck.complete_checkpoints(tmp_path)] == [100]
    # A crash mid-write leaves a temp folder or a folder without manifest: both are ignored.
    (tmp_path / ".tmp-step-000200-1").mkdir()
    half = tmp_path / "step-000300"
    half.mkdir()
    (half / ck.LORA_FILE).write_bytes(b"x")
    (tmp_path / "step-000400").mkdir()
    (tmp_path / "step-000400" / ck.MANIFEST).write_text("{not json")
    assert [c.step for c in ck.complete_checkpoints(tmp_path)] == [100]
    assert ck.latest_resumable(tmp_path).step == 100
    ck.remove_stale_temps(tmp_path)
    assert not (tmp_path / ".tmp-step-000200-1").exists()


def test_a_failing_write_leaves_earlier_checkpoints_untouched(tmp_path: Path) -> None:
    ck.write_checkpoint(tmp_path, 100, _fill("a"))

    def disk_full(folder: Path) -> dict:
        (folder / ck.LORA_FILE).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        ck.write_checkpoint(tmp_path, 200, disk_full)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000100"]
    assert (tmp_path / "step-000100" / ck.LORA_FILE).read_bytes() == b"lora a"


def test_only_the_newest_checkpoint_keeps_its_resume_state(tmp_path: Path) -> None:
    ck.write_checkpoint(tmp_path, 100, _fill("a"))
    ck.write_checkpoint(tmp_path, 200, _fill("b"))
    ck.drop_old_resume_states(tmp_path, keep_step=200)
    assert not (tmp_path / "step-000100" / ck.RESUME_STATE).exists()
    assert ck.latest_resumable(tmp_path).step == 200
    assert json.loads((tmp_path / "step-000100" / ck.MANIFEST).read_text())["scores"] == [0.5]
