"""Small pieces on their own: the janitor's sweep, the fault-injection spec, the AI-generated labels."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from portrait_studio.errors import InputError, OutOfMemoryError
from portrait_studio.faults import FaultInjector, is_out_of_memory, out_of_memory_error, parse_faults
from portrait_studio.janitor import Janitor, sweep
from portrait_studio.media.outputs import AI_LABEL


def _age(path: Path, seconds: float) -> None:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp), follow_symlinks=False)


def test_sweep_deletes_old_files_and_emptied_folders_only_inside_its_roots(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    old_dir = outputs / "u-a" / "stylize" / "old-run"
    new_dir = outputs / "u-a" / "stylize" / "new-run"
    fresh_empty = outputs / "u-b" / "animate" / "just-created"
    for folder in (old_dir, new_dir, fresh_empty):
        folder.mkdir(parents=True)
    (old_dir / "a.png").write_bytes(b"x" * 10)
    (new_dir / "b.png").write_bytes(b"y" * 20)
    outside = tmp_path / "keep.txt"
    outside.write_text("not ours")
    (old_dir / "link").symlink_to(outside)
    for path in (old_dir / "a.png", old_dir / "link", outside):
        _age(path, 7200)

    report = sweep([outputs, tmp_path / "missing"], max_age_seconds=3600)

    assert report.files == 2 and report.bytes >= 10
    assert not old_dir.exists()  # emptied by the sweep, so gone too
    assert (new_dir / "b.png").is_file() and fresh_empty.is_dir()  # fresh files and a job's new folder stay
    assert outside.read_text() == "not ours"  # a symlink is removed as a link, never followed
    assert outputs.is_dir()


def test_janitor_thread_sweeps_on_its_own(tmp_path: Path) -> None:
    stale = tmp_path / "tmp" / "abc" / "upload.jpg"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"photo")
    _age(stale, 100)
    janitor = Janitor([tmp_path / "tmp"], max_age_seconds=50, interval_seconds=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while stale.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        janitor.stop()
    assert not stale.exists() and not stale.parent.exists()


def test_fault_spec_is_parsed_strictly_and_counts_down() -> None:
    import torch

    plans = parse_faults("oom:stylize:2, error:talk:1,slow:check_photos:1:0.01")
    assert {k: (p.kind, p.remaining) for k, p in plans.items()} == {
        "stylize": ("oom", 2), "talk": ("error", 1), "check_photos": ("slow", 1)}
    for bad in ("oom:stylize", "boom:stylize:1", "oom::1", "oom:stylize:x", "oom:stylize:1:5"):
        with pytest.raises(InputError, match="KIND:TASK:COUNT"):
            parse_faults(bad)
    injector = FaultInjector("oom:stylize:1,slow:check_photos:1:0.01")
    with pytest.raises(torch.OutOfMemoryError):
        injector.maybe_fail("stylize")
    injector.maybe_fail("stylize")  # spent: the next job runs
    injector.maybe_fail("animate")  # no plan, no fault
    began = time.monotonic()
    injector.maybe_fail("check_photos")
    assert time.monotonic() - began >= 0.01
    assert not FaultInjector("").active


def test_out_of_memory_is_recognised_and_explained() -> None:
    import torch

    for exc in (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
                RuntimeError("MPS backend out of memory")):
        assert is_out_of_memory(exc)
        message = str(out_of_memory_error(exc))
        assert isinstance(out_of_memory_error(exc), OutOfMemoryError) and "smaller size" in message
    assert not is_out_of_memory(RuntimeError("shape mismatch")) and not is_out_of_memory(ValueError("x"))


def test_videos_and_gifs_say_they_are_ai_generated(tmp_path: Path) -> None:
    import imageio_ffmpeg

    from portrait_studio.media.video import write_gif, write_mp4

    frames = [np.full((16, 16, 3), 40 * i, np.uint8) for i in range(4)]
    mp4 = write_mp4(frames, tmp_path / "clip.mp4", fps=8)
    gif = write_gif(frames, tmp_path / "clip.gif", fps=8)
    meta = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(mp4), "-f", "ffmetadata", "-"],
                          capture_output=True, text=True, timeout=60).stdout
    assert f"comment={AI_LABEL}" in meta and "description=AI-generated" in meta
    with Image.open(gif) as image:
        assert image.info["comment"] == AI_LABEL.encode()
