"""A visitor's model jobs (photo check, stylize, animate, talk): ids in the visitor's namespace, state,
progress, cancel and a history of results that outlives the page that started them.

The web page is only a view: a job belongs to its *owner* (the visitor, see ``ui.common.request_owner``),
not to the browser session. A page that reloads finds its owner's running and recent jobs here and can cancel
them; a job whose page went away still runs to its end and leaves its result in the history.

Each job is one JSON file ``<folder>/<owner>/<job_id>.json``, written atomically when it is created, starts
and ends (progress stays in memory: it changes many times a second). After an app restart the history is read
back; a job the restart interrupted is marked ``interrupted``. Each owner keeps the newest ``keep`` jobs.

Training jobs run in their own processes and keep their own records (:mod:`portrait_studio.likeness.jobs`);
the UI lists both side by side.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portrait_studio.errors import CancelledError, InputError
from portrait_studio.likeness.status import check_id, write_json_atomic
from portrait_studio.progress import CancelToken

log = logging.getLogger(__name__)

ACTIVE_STATES = ("waiting", "running")
FINAL_STATES = ("succeeded", "failed", "cancelled", "interrupted")
KEEP_PER_OWNER = 30


def _cancelling(message: str) -> str:
    """The phase line of a job asked to stop: "cancelling… (image 3/8)", not "cancelling… (cancelled)"."""
    return "cancelling…" if message.lower().startswith("cancel") else f"cancelling… ({message})"


@dataclass
class VisitorJob:
    job_id: str
    owner: str
    kind: str  # "stylize", "animate", "talk", "check_photos", ...
    title: str = ""
    state: str = "waiting"
    fraction: float = 0.0
    message: str = ""
    error: str = ""
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    session: str = ""  # the page that asked for it: it claims the job when its queued call starts
    result: Any = None  # JSON: what the page shows for it (ui.job_runs encodes and decodes it)
    partial: bool = False  # cancelled, but what finished before the cancel is kept in ``result``

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VisitorJob:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class VisitorJobs:
    """Thread-safe registry of every owner's jobs; ``folder=None`` keeps them in memory only."""

    def __init__(self, folder: Path | None, *, keep: int = KEEP_PER_OWNER, max_age: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.folder = folder
        self.keep = keep
        self.max_age = max_age  # public apps: finished jobs are forgotten with the outputs they point to
        self.clock = clock
        self._lock = threading.RLock()
        self._jobs: dict[str, dict[str, VisitorJob]] = {}  # owner -> job id -> job
        self._tokens: dict[tuple[str, str], CancelToken] = {}

    # ---- reading ------------------------------------------------------------------------------------
    def get(self, owner: str, job_id: str) -> VisitorJob:
        """One of ``owner``'s jobs (a copy); another owner's id is unknown here, as it should be."""
        with self._lock:
            job = self._owner_jobs(owner).get(str(job_id))
            if job is None:
                raise InputError(f"No job {job_id!r} in your history: it finished long ago or was never yours.")
            return dataclasses.replace(job)

    def list(self, owner: str, kind: str | None = None) -> list[VisitorJob]:
        """The owner's jobs (of one kind, if given), newest first."""
        with self._lock:
            jobs = [dataclasses.replace(j) for j in self._owner_jobs(owner).values() if kind in (None, j.kind)]
        return sorted(jobs, key=lambda j: j.created, reverse=True)

    def latest(self, owner: str, kind: str) -> VisitorJob | None:
        jobs = self.list(owner, kind)
        return jobs[0] if jobs else None

    def token(self, owner: str, job_id: str) -> CancelToken:
        with self._lock:
            self._known(owner, job_id)
            return self._tokens.setdefault((owner, job_id), CancelToken())

    # ---- life cycle ---------------------------------------------------------------------------------
    def create(self, owner: str, kind: str, title: str = "", session: str = "") -> VisitorJob:
        """A new job waiting for the device (the page's Cancel works on it at once)."""
        now = self.clock()
        job = VisitorJob(f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}-{secrets.token_hex(4)}",
                         check_id("owner", owner), kind, title or kind, created=now, session=session,
                         message="waiting for its turn")
        with self._lock:
            self._owner_jobs(owner)[job.job_id] = job
            self._tokens[(owner, job.job_id)] = CancelToken()
            self._save(job)
            self._prune(owner)
        return dataclasses.replace(job)

    def claim(self, owner: str, kind: str, session: str) -> VisitorJob | None:
        """The newest job ``session`` created for ``kind`` that has not started yet (None when there is none)."""
        with self._lock:
            waiting = [j for j in self._owner_jobs(owner).values()
                       if j.kind == kind and j.session == session and j.started is None and j.state == "waiting"]
            cancelled = [j for j in self._owner_jobs(owner).values()
                         if j.kind == kind and j.session == session and j.started is None and j.state == "cancelled"
                         and j.finished is not None and self.clock() - j.finished < 3600]
            pool = waiting or cancelled  # a job cancelled while it waited is claimed, then refused by start()
            return dataclasses.replace(max(pool, key=lambda j: j.created)) if pool else None

    def start(self, owner: str, job_id: str) -> CancelToken:
        """The job's turn has come: it runs now. Raises CancelledError when it was cancelled while waiting."""
        with self._lock:
            job = self._known(owner, job_id)
            if job.started is not None or job.state != "waiting":
                job.started = job.started or self.clock()  # never claimed again
                self._save(job)
                raise CancelledError("Cancelled before it started.")
            job.started = self.clock()
            job.state, job.message = "running", "starting"
            self._save(job)
            return self._tokens.setdefault((owner, job_id), CancelToken())

    def report(self, owner: str, job_id: str, fraction: float, message: str = "") -> None:
        """Progress of a running job (memory only)."""
        with self._lock:
            job = self._owner_jobs(owner).get(job_id)
            if job is None or job.state != "running":
                return
            job.fraction = min(max(float(fraction), 0.0), 1.0)
            if message:
                token = self._tokens.get((owner, job_id))
                job.message = message if token is None or not token.cancelled else _cancelling(message)

    def succeed(self, owner: str, job_id: str, result: Any, message: str = "done") -> VisitorJob:
        return self._end(owner, job_id, "succeeded", message=message, result=result, fraction=1.0)

    def fail(self, owner: str, job_id: str, error: str) -> VisitorJob:
        return self._end(owner, job_id, "failed", message="failed", error=error)

    def end_cancelled(self, owner: str, job_id: str, result: Any = None, message: str = "Cancelled.") -> VisitorJob:
        """The job stopped on a cancel; ``result`` keeps what it finished before (then it is ``partial``)."""
        return self._end(owner, job_id, "cancelled", message=message, result=result, partial=result is not None)

    def cancel(self, owner: str, job_id: str) -> VisitorJob:
        """Stop a job: a waiting one ends at once, a running one stops within one step of its work."""
        with self._lock:
            job = self._known(owner, job_id)
            if job.done:
                return dataclasses.replace(job)
            self._tokens.setdefault((owner, job_id), CancelToken()).cancel()
            if job.state == "waiting":
                job.state, job.message, job.finished = "cancelled", "Cancelled before it started.", self.clock()
                self._save(job)
            else:
                job.message = "cancelling after the current step…"
            return dataclasses.replace(job)

    def abandon_session(self, session: str) -> int:
        """A page closed: the calls it had queued never start (the web server drops them), so its waiting
        jobs end. Running ones go on: their results wait in the history."""
        count = 0
        with self._lock:
            for jobs in self._jobs.values():
                for job in jobs.values():
                    if job.session == session and job.state == "waiting" and job.started is None:
                        job.state, job.finished = "cancelled", self.clock()
                        job.message = "The page closed before it started."
                        self._save(job)
                        count += 1
        return count

    # ---- internals ----------------------------------------------------------------------------------
    def _end(self, owner: str, job_id: str, state: str, **changes: Any) -> VisitorJob:
        with self._lock:
            job = self._known(owner, job_id)
            for name, value in changes.items():
                setattr(job, name, value)
            job.state, job.finished = state, self.clock()
            self._save(job)
            self._tokens.pop((owner, job_id), None)
            return dataclasses.replace(job)

    def _known(self, owner: str, job_id: str) -> VisitorJob:
        job = self._owner_jobs(owner).get(str(job_id))
        if job is None:
            raise InputError(f"No job {job_id!r} in your history: it finished long ago or was never yours.")
        return job

    def _owner_jobs(self, owner: str) -> dict[str, VisitorJob]:
        check_id("owner", owner)
        jobs = self._jobs.get(owner)
        if jobs is None:
            jobs = self._jobs[owner] = self._load(owner)
        if self.max_age is not None:
            cutoff = self.clock() - self.max_age
            for job in [j for j in jobs.values() if j.done and (j.finished or j.created) < cutoff]:
                self._forget(owner, job.job_id)
        return jobs

    def _load(self, owner: str) -> dict[str, VisitorJob]:
        """The owner's history from disk; jobs an earlier app run left active were interrupted by its end."""
        jobs: dict[str, VisitorJob] = {}
        folder = None if self.folder is None else self.folder / owner
        if folder is None or not folder.is_dir():
            return jobs
        for path in folder.glob("*.json"):
            try:
                job = VisitorJob.from_json(json.loads(path.read_text()))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("skipping damaged job record %s: %s", path, exc)
                continue
            if job.owner != owner or path.stem != job.job_id:
                continue
            if job.active:
                job.state, job.finished = "interrupted", job.finished or self.clock()
                job.message = "The app restarted while this job ran; run it again."
                self._save(job)
            jobs[job.job_id] = job
        return jobs

    def _save(self, job: VisitorJob) -> None:
        if self.folder is None:
            return
        folder = self.folder / job.owner
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_json_atomic(folder / f"{job.job_id}.json", job.to_json())
        except (OSError, TypeError, ValueError) as exc:  # a full disk must not fail the job itself
            log.warning("could not write job record %s: %s", job.job_id, exc)

    def _prune(self, owner: str) -> None:
        jobs = self._jobs.get(owner, {})
        finished = sorted((j for j in jobs.values() if j.done), key=lambda j: j.created, reverse=True)
        for job in finished[max(self.keep - sum(j.active for j in jobs.values()), 0):]:
            self._forget(owner, job.job_id)

    def _forget(self, owner: str, job_id: str) -> None:
        self._jobs.get(owner, {}).pop(job_id, None)
        self._tokens.pop((owner, job_id), None)
        if self.folder is not None:
            (self.folder / owner / f"{job_id}.json").unlink(missing_ok=True)


# ---- the job this thread runs -----------------------------------------------------------------------
# A handler runs one job in one thread; its progress callbacks and cancel token are made deep inside the
# tab's code. They find the job here instead of every signature carrying it.
_current = threading.local()


class running_job:  # noqa: N801 - used as a context manager, like contextlib's
    """``with running_job(jobs, owner, job_id):`` makes this thread's progress and cancel token the job's."""

    def __init__(self, jobs: VisitorJobs, owner: str, job_id: str) -> None:
        self.entry = (jobs, owner, job_id)

    def __enter__(self) -> None:
        self.previous = getattr(_current, "job", None)
        _current.job = self.entry

    def __exit__(self, *exc: object) -> None:
        _current.job = self.previous


def report_current(fraction: float, message: str = "") -> None:
    """Progress of this thread's job, if it runs one (a no-op elsewhere: the CLI, tests, ZeroGPU workers)."""
    entry = getattr(_current, "job", None)
    if entry is not None:
        jobs, owner, job_id = entry
        jobs.report(owner, job_id, fraction, message)


def current_token() -> CancelToken | None:
    """The cancel token of this thread's job (None outside one)."""
    entry = getattr(_current, "job", None)
    if entry is None:
        return None
    jobs, owner, job_id = entry
    return jobs.token(owner, job_id)
