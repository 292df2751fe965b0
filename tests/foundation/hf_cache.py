"""A Hugging Face hub cache written by hand, laid out as huggingface_hub writes it.

``<HF_HOME>/hub/models--org--name/{blobs/<sha256>, snapshots/<commit>/<path> -> ../../blobs/<sha256>,
refs/main}``: so the locator's offline lookup meets the same tree a real download leaves.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

FAKE_COMMIT = "39593d5650112b4cc580433f6b0435385882d819"


def repo_cache_dir(hf_home: Path, repo_id: str) -> Path:
    return hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))


def write_snapshot(
    hf_home: Path, repo_id: str, build: Callable[[Path], None], commit: str = FAKE_COMMIT, ref: str = "main"
) -> Path:
    """Build a model with ``build(folder)`` and store it as a cached snapshot; return the snapshot folder."""
    repo = repo_cache_dir(hf_home, repo_id)
    snapshot = repo / "snapshots" / commit
    staging = repo / "staging"
    staging.mkdir(parents=True)
    build(staging)
    (repo / "blobs").mkdir(exist_ok=True)
    for file in sorted(p for p in staging.rglob("*") if p.is_file()):
        blob = repo / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        if not blob.exists():
            os.replace(file, blob)
        link = snapshot / file.relative_to(staging)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    for leftover in sorted(staging.rglob("*"), reverse=True):
        leftover.unlink() if leftover.is_file() else leftover.rmdir()
    staging.rmdir()
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    return snapshot
