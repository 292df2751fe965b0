"""Training jobs in the app: submit, poll, cancel, one job at a time from a visible FIFO queue.

Each job runs in its own process (``python -m portrait_studio.likeness.worker JOB_DIR``, an argument
list, never a shell), so a crash or an out-of-memory in training cannot take the app down, and the
user can close the browser. On app start :meth:`JobManager.resume_incomplete` picks up jobs a dead
process left "running": they continue from their newest complete checkpoint.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from portrait_studio.config import Settings
from portrait_studio.errors import InputError
from portrait_studio.likeness.config import TrainingConfig
from portrait_studio.likeness.photo_rule import PhotoCount, file_problem
from portrait_studio.likeness.status import (
    CANCEL_FILE,
    JOB_FILE,
    LOG_FILE,
    JobStatus,
    check_id,
    read_job,
    read_status,
    update_status,
    write_json_atomic,
    write_status,
)

log = logging.getLogger(__name__)
WORKER_COMMAND = (sys.executable, "-m", "portrait_studio.likeness.worker")
MAX_ATTEMPTS = 3  # a job whose worker keeps dying is failed instead of restarted forever


@dataclass
class _Running:
    owner: str
    job_id: str
    pid: int
    process: subprocess.Popen | None  # None when adopted from an earlier app run


class JobManager:
    """Thread-safe registry of training jobs under ``settings.jobs_dir/<owner>/<job_id>/``."""

    def __init__(
        self,
        settings: Settings,
        *,
        worker_command: Sequence[str] = WORKER_COMMAND,
        before_job: Callable[[], None] | None = None,
        poll_interval: float = 0.5,
        autostart: bool = True,
    ) -> None:
        self.settings = settings
        self.worker_command = list(worker_command)
        self.before_job = before_job  # e.g. the app's cache.unload_all(): training needs the whole GPU
        self.poll_interval = poll_interval
        self.autostart = autostart
        self._lock = threading.RLock()
        self._queue: collections.deque[tuple[str, str]] = collections.deque()
        self._running: _Running | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if autostart:
            self._thread = threading.Thread(target=self._monitor, name="training-jobs", daemon=True)
            self._thread.start()

    # ---- public API -----------------------------------------------------------------------------
    def submit(self, owner: str, name: str, photos: list[Path], config: TrainingConfig, consent: bool,
               keep_photos: bool = False, *, role: str = "base") -> str:
        """Copy the photos into a new job folder and queue it; return the job id."""
        check_id("owner", owner)
        if consent is not True:
            raise InputError(
                "Please confirm consent: train only on photos of yourself, or of someone who agreed to it."
            )
        name = (name or "").strip()
        if not name or len(name) > 60 or not name.isprintable():
            raise InputError("Give the likeness a name of 1 to 60 printable characters.")
        config.validate()
        photo_paths = self._check_photos(photos)
        self._refuse_second_job(owner, name)
        job_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        owner_dir = self.settings.jobs_dir / owner
        owner_dir.mkdir(parents=True, exist_ok=True)
        staging = owner_dir / f".tmp-{job_id}"
        try:
            (staging / "photos").mkdir(parents=True)
            for index, path in enumerate(photo_paths):
                shutil.copyfile(path, staging / "photos" / f"{index:03d}{path.suffix.lower()}")
            from portrait_studio.likeness.worker import settings_to_json

            job = {"job_id": job_id, "owner": owner, "name": name, "config": config.to_dict(), "consent": True,
                   "keep_photos": bool(keep_photos), "role": role, "settings": settings_to_json(self.settings),
                   "created": time.time()}
            write_json_atomic(staging / JOB_FILE, job)
            write_status(staging, JobStatus(job_id, owner, name, max_steps=config.steps, message="waiting in line"))
            os.replace(staging, owner_dir / job_id)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        with self._lock:
            self._queue.append((owner, job_id))
        self._wake.set()
        return job_id

    def status(self, owner: str, job_id: str) -> JobStatus:
        status = read_status(self._job_dir(owner, job_id))
        with self._lock:
            if (owner, job_id) in self._queue:
                status.queue_position = list(self._queue).index((owner, job_id)) + 1
        return status

    def list(self, owner: str) -> list[JobStatus]:
        """The owner's jobs, newest first."""
        owner_dir = self.settings.jobs_dir / check_id("owner", owner)
        if not owner_dir.is_dir():
            return []
        found = []
        for job_dir in owner_dir.iterdir():
            if job_dir.is_dir() and not job_dir.name.startswith("."):
                try:
                    found.append(self.status(owner, job_dir.name))
                except InputError:
                    continue
        return sorted(found, key=lambda s: s.created, reverse=True)

    def queue(self) -> list[JobStatus]:
        """The running job (if any) then the waiting ones, in the order they will run."""
        with self._lock:
            keys = ([(self._running.owner, self._running.job_id)] if self._running else []) + list(self._queue)
        result = []
        for owner, job_id in keys:
            try:
                result.append(self.status(owner, job_id))
            except InputError:
                continue
        return result

    def cancel(self, owner: str, job_id: str) -> JobStatus:
        """Stop a job: drop it from the queue, or ask its worker to stop (cancel file + SIGTERM)."""
        job_dir = self._job_dir(owner, job_id)
        status = read_status(job_dir)
        if status.done:
            return status
        (job_dir / CANCEL_FILE).touch()
        with self._lock:
            if (owner, job_id) in self._queue:
                self._queue.remove((owner, job_id))
                self._end_without_worker(job_dir, "cancelled", "Cancelled before it started.")
            elif self._running and (self._running.owner, self._running.job_id) == (owner, job_id):
                _signal(self._running.pid, signal.SIGTERM)
        self._wake.set()
        return self.status(owner, job_id)

    def resume_incomplete(self) -> list[str]:
        """On app start: queue jobs left queued, and resume those a dead worker left running."""
        resumed: list[tuple[float, str, str]] = []
        if not self.settings.jobs_dir.is_dir():
            return []
        for owner_dir in self.settings.jobs_dir.iterdir():
            if not owner_dir.is_dir():
                continue
            for job_dir in owner_dir.iterdir():
                if job_dir.name.startswith(".") or not (job_dir / JOB_FILE).is_file():
                    continue
                try:
                    status = read_status(job_dir)
                except InputError:
                    continue
                key = (owner_dir.name, job_dir.name)
                with self._lock:
                    if key in self._queue or (self._running and (self._running.owner, self._running.job_id) == key):
                        continue
                    if status.state == "running" and status.pid and _is_worker(status.pid, job_dir):
                        if self._running is None:
                            self._running = _Running(*key, status.pid, None)  # still alive: adopt it
                        continue  # never start a second worker on a job whose worker still runs
                    if status.state not in ("queued", "running"):
                        continue
                    if (job_dir / CANCEL_FILE).exists():
                        self._end_without_worker(job_dir, "cancelled", "Cancelled.")
                        continue
                    if status.state == "running":
                        update_status(job_dir, state="queued", pid=None,
                                      message="interrupted; will resume from the last checkpoint")
                    resumed.append((status.created, *key))
        with self._lock:
            for _, owner, job_id in sorted(resumed):
                self._queue.append((owner, job_id))
        self._wake.set()
        return [job_id for _, _, job_id in sorted(resumed)]

    def wait(self, owner: str, job_id: str, timeout: float = 3600.0) -> JobStatus:
        """Block until the job reaches a final state (for the CLI and tests)."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.autostart:
                self.pump()
            status = self.status(owner, job_id)
            if status.done or time.monotonic() > deadline:
                return status
            time.sleep(min(self.poll_interval, 0.2))

    def shutdown(self) -> None:
        """Stop watching (workers keep running; the next app start adopts or resumes them)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # ---- scheduling -----------------------------------------------------------------------------
    def _monitor(self) -> None:
        while not self._stop.is_set():
            try:
                self.pump()
            except Exception:  # noqa: BLE001 - the monitor must survive any one bad job folder
                log.exception("training job monitor")
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    def pump(self) -> None:
        """Reap a finished worker, then start the next queued job when none is running."""
        with self._lock:
            if self._running is not None and not self._still_running(self._running):
                self._reap(self._running)
                self._running = None
            while self._running is None and self._queue:
                owner, job_id = self._queue.popleft()
                job_dir = self._job_dir(owner, job_id)
                if read_status(job_dir).done:
                    continue
                self._launch(owner, job_id, job_dir)

    def _still_running(self, running: _Running) -> bool:
        if running.process is not None:
            return running.process.poll() is None
        return _is_worker(running.pid, self._job_dir(running.owner, running.job_id))

    def _launch(self, owner: str, job_id: str, job_dir: Path) -> None:
        if self.before_job is not None:
            self.before_job()
        with open(job_dir / LOG_FILE, "ab") as log_file:
            process = subprocess.Popen(
                [*self.worker_command, str(job_dir)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=_worker_env(),
                start_new_session=True,  # Ctrl-C in the app's terminal must not kill training
            )
        # Counted here, not by the worker: a worker that dies on start-up must count too.
        attempts = read_status(job_dir).attempts + 1
        update_status(job_dir, state="running", pid=process.pid, attempts=attempts, message="starting")
        self._running = _Running(owner, job_id, process.pid, process)

    def _reap(self, running: _Running) -> None:
        """The worker exited. If it did not write a final state it died: resume it or give up."""
        job_dir = self._job_dir(running.owner, running.job_id)
        status = read_status(job_dir)
        if status.done:
            return
        code = running.process.returncode if running.process is not None else None
        if (job_dir / CANCEL_FILE).exists():
            self._end_without_worker(job_dir, "cancelled", "Cancelled.")
        elif status.attempts < MAX_ATTEMPTS:
            log.warning("training worker of %s exited (%s); resuming", running.job_id, code)
            update_status(job_dir, state="queued", pid=None,
                          message=f"the training process stopped (exit {code}); resuming from the last checkpoint")
            self._queue.appendleft((running.owner, running.job_id))
        else:
            self._end_without_worker(
                job_dir, "failed", "Training failed.",
                f"The training process stopped {status.attempts} times (last exit code {code}); see the job log.",
            )

    def _end_without_worker(self, job_dir: Path, state: str, message: str, error: str = "") -> None:
        from portrait_studio.likeness.worker import delete_private_data

        if not read_job(job_dir).get("keep_photos"):
            delete_private_data(job_dir)
        update_status(job_dir, state=state, message=message, error=error, pid=None, finished=time.time(),
                      eta_seconds=None)

    # ---- helpers --------------------------------------------------------------------------------
    def _job_dir(self, owner: str, job_id: str) -> Path:
        return self.settings.jobs_dir / check_id("owner", owner) / check_id("job id", job_id)

    def _check_photos(self, photos: list[Path]) -> list[Path]:
        """The photo rule of ``likeness.photo_rule``: the same words the photo check uses."""
        paths = [Path(p) for p in photos]
        PhotoCount.from_settings(self.settings).require_trainable(len(paths))
        for path in paths:
            if problem := file_problem(path, self.settings):
                raise InputError(f"{path.name}: {problem}.")
        return paths

    def _refuse_second_job(self, owner: str, name: str) -> None:
        """One job per likeness: a double click or a second tab must not start the same training twice."""
        for status in self.list(owner):
            if not status.done and status.name.strip().casefold() == name.casefold():
                where = "waiting in line" if status.state == "queued" else status.state
                raise InputError(f"A training job for '{status.name}' is already {where} (job {status.job_id}): "
                                 "wait for it or cancel it before starting another.")


def _worker_env() -> dict[str, str]:
    """The app's environment, with this checkout first on the path so the worker runs the same code."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _is_worker(pid: int, job_dir: Path) -> bool:
    """True when ``pid`` is alive and is the worker of ``job_dir`` (not a recycled pid)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            args = cmdline.read_bytes().split(b"\0")
            status = Path(f"/proc/{pid}/stat").read_text().split()
        except OSError:
            return False
        if len(status) > 2 and status[2] == "Z":  # a zombie is dead
            return False
        return str(job_dir).encode() in args
    return True


def job_status_dict(status: JobStatus) -> dict:
    """Plain dict for the UI (JSON-friendly)."""
    data = dataclasses.asdict(status)
    data["fraction"] = status.fraction
    return data
