"""A training job on disk: ``job.json`` (what to do), ``status.json`` (how it goes), written atomically.

Layout of ``<jobs_dir>/<owner>/<job_id>/``: ``job.json``, ``status.json``, ``log.txt``, ``photos/``
(uploads; deleted at the end unless kept), ``dataset/`` (face crops; likewise), ``checkpoints/``,
``final/``, and ``CANCEL`` when the user asked to stop.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portrait_studio.errors import InputError

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_STATES = ("succeeded", "failed", "cancelled")
JOB_FILE = "job.json"
STATUS_FILE = "status.json"
LOG_FILE = "log.txt"
CANCEL_FILE = "CANCEL"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_id(kind: str, value: str) -> str:
    """Owner names and job ids become folder names: allow only a safe alphabet (no '/', no '..')."""
    if not isinstance(value, str) or not _SAFE_ID.match(value) or ".." in value:
        raise InputError(f"Invalid {kind} {value!r}: use 1-64 letters, digits, '_', '-' or '.'.")
    return value


@dataclass
class CheckpointPoint:
    """One point of the similarity plot."""

    step: int
    best: float
    scores: list[float]


@dataclass
class JobStatus:
    job_id: str
    owner: str
    name: str
    state: str = "queued"
    step: int = 0
    max_steps: int = 0
    loss: float | None = None
    eta_seconds: float | None = None
    message: str = ""
    error: str = ""
    checkpoints: list[CheckpointPoint] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    pid: int | None = None
    attempts: int = 0
    resumed_from: int | None = None
    random_weights: bool = False
    slug: str | None = None
    queue_position: int | None = None  # filled in by the JobManager, not stored

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def fraction(self) -> float:
        return self.step / self.max_steps if self.max_steps else 0.0

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("queue_position")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobStatus:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["checkpoints"] = [CheckpointPoint(**c) for c in values.get("checkpoints", [])]
        return cls(**values)


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_status(job_dir: Path) -> JobStatus:
    try:
        return JobStatus.from_json(json.loads((job_dir / STATUS_FILE).read_text()))
    except FileNotFoundError:
        raise InputError(f"No training job at {job_dir.name}: it was never submitted or was deleted.") from None
    except (ValueError, TypeError) as exc:
        raise InputError(f"The status file of job {job_dir.name} is damaged ({exc}).") from exc


def write_status(job_dir: Path, status: JobStatus) -> None:
    write_json_atomic(job_dir / STATUS_FILE, status.to_json())


def update_status(job_dir: Path, **changes: Any) -> JobStatus:
    status = dataclasses.replace(read_status(job_dir), **changes)
    write_status(job_dir, status)
    return status


def read_job(job_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((job_dir / JOB_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"The job file of {job_dir.name} is missing or damaged ({exc}).") from exc
