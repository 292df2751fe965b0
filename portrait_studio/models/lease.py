"""One device lease across processes: whoever puts models on the GPU holds it.

A training worker holds the lease for its whole life; every model handler of the app and every CLI
command that runs a model takes it for the length of its job. The lease is an exclusive ``flock`` on
``<home>/locks/device.lock``: the kernel drops it when its holder dies (even by kill -9), so a crash
never leaves the card locked. The holder describes itself in ``device.holder.json`` so a waiter can
say who it waits for; waiters announce themselves under ``device.waiting/`` so a holder can see that a
training job waits and free its model cache before letting go.

Decision: requests **wait** while training holds the card; they never share it on the strength of a
free-memory reading. The trainer's use grows at every checkpoint (validation renders and decodes
images), and another process cannot reserve memory in the trainer's process, so a request admitted on a
snapshot could push the trainer into out-of-memory at its next checkpoint and throw away the steps
since the last one. Waiting costs the visitor minutes, with a message naming the job and its ETA.

Where the lease is off: ZeroGPU (the platform schedules calls to the GPU; no process-wide lock there),
and by default on a CPU-only machine, where nothing is shared but RAM and a Stylize during a CPU training
run is slower, not fatal. ``PORTRAIT_STUDIO_DEVICE_LEASE=on|off|auto`` overrides the choice.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from portrait_studio.config import DEVICE_LEASES, Settings
from portrait_studio.progress import CancelToken

log = logging.getLogger(__name__)

LOCKS_DIR = "locks"
LOCK_FILE = "device.lock"
HOLDER_FILE = "device.holder.json"
WAITING_DIR = "device.waiting"
POLL_SECONDS = 0.25
REPEAT_MESSAGE_SECONDS = 30.0  # a waiter hears the (updated) reason again this often


def on_zero_gpu() -> bool:
    """A ZeroGPU Space (the ``spaces`` package's reading of ``SPACES_ZERO_GPU``)."""
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "t", "true")


def lease_enabled(setting: str, device_type: str, zero_gpu: bool) -> bool:
    """Whether processes must take the device lease: never on ZeroGPU, else ``on``/``off``, else
    (``auto``) on a GPU (cuda or mps) only."""
    if setting not in DEVICE_LEASES:
        raise ValueError(f"device lease setting {setting!r} is not one of {DEVICE_LEASES}")
    if zero_gpu:
        return False
    if setting in ("on", "off"):
        return setting == "on"
    return device_type in ("cuda", "mps")


@dataclass(frozen=True)
class Holder:
    """Who holds (or waits for) the device: ``kind`` is ``training``, ``request`` or ``cli``."""

    kind: str
    task: str  # "stylize", "animate", ... or the likeness name being trained
    pid: int = field(default_factory=os.getpid)
    job_dir: str = ""  # training: the job folder (its status.json has the step and ETA)


def describe(holder: Holder | None) -> str:
    """Why a waiter waits, in words for the user: the job and its ETA when training holds the device."""
    if holder is None:
        return "Waiting for the GPU: another job is using it."
    if holder.kind == "training":
        progress = _training_progress(holder.job_dir)
        what = f"the likeness '{holder.task}'" if holder.task else "a likeness"
        return (f"Waiting for the GPU: it is training {what}{progress}. "
                "Your request starts when the training ends.")
    if holder.kind == "cli":
        return f"Waiting for the GPU: a command-line {holder.task} job (process {holder.pid}) is using it."
    return f"Waiting for the GPU: another {holder.task} request is using it."


def _training_progress(job_dir: str) -> str:
    if not job_dir:
        return ""
    try:
        from portrait_studio.likeness.status import read_status

        status = read_status(Path(job_dir))
    except Exception:  # noqa: BLE001 - a status being rewritten or gone: describe without it
        return ""
    parts = []
    if status.max_steps:
        parts.append(f"step {status.step} of {status.max_steps}")
    if status.eta_seconds is not None:
        parts.append(f"about {max(1, round(status.eta_seconds / 60))} min left")
    return f" ({', '.join(parts)})" if parts else ""


class DeviceLease:
    """The lease of one home folder. ``enabled=False`` makes :meth:`hold` a no-op (ZeroGPU, CPU)."""

    def __init__(self, home: Path, enabled: bool | Callable[[], bool] = True,
                 poll_seconds: float = POLL_SECONDS) -> None:
        self.folder = Path(home) / LOCKS_DIR
        self._enabled = enabled  # a callable is asked on first use: deciding may need torch (the device)
        self.poll_seconds = poll_seconds
        # Run by the holder before it lets go when a training job waits (the app frees its model cache).
        self.before_training_takes_over: list[Callable[[], object]] = []
        self._local = threading.local()

    @property
    def enabled(self) -> bool:
        if callable(self._enabled):
            self._enabled = bool(self._enabled())
        return self._enabled

    @classmethod
    def for_settings(cls, settings: Settings, device_type: str | None = None) -> DeviceLease:
        """The lease for ``settings``; without ``device_type`` the device is picked (importing torch) only
        when the lease is first used, so creating it costs nothing at start-up."""

        def decide() -> bool:
            from portrait_studio.models.devices import pick_device

            device = device_type or pick_device(settings.device).type
            return lease_enabled(settings.device_lease, device, on_zero_gpu())

        return cls(settings.home, decide)

    # ---- reading ---------------------------------------------------------------------------------
    def holder(self) -> Holder | None:
        """The current holder as it described itself (None when free or not yet described)."""
        return _read_holder(self.folder / HOLDER_FILE)

    def waiting(self) -> list[Holder]:
        folder = self.folder / WAITING_DIR
        if not folder.is_dir():
            return []
        found = [_read_holder(path) for path in sorted(folder.glob("*.json"))]
        return [h for h in found if h is not None and _alive(h.pid)]

    # ---- holding ---------------------------------------------------------------------------------
    @contextmanager
    def hold(self, holder: Holder, on_wait: Callable[[str], None] | None = None,
             cancel: CancelToken | None = None) -> Iterator[None]:
        """Hold the device for the ``with`` block, waiting (and telling ``on_wait`` why) while another
        process or thread holds it. Re-entrant within one thread. ``cancel`` stops the wait."""
        depth = getattr(self._local, "depth", 0)
        if not self.enabled or depth:
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth = depth
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = open(self.folder / LOCK_FILE, "a+b")  # noqa: SIM115 - closed in the finally below
        try:
            self._acquire(handle, holder, on_wait, cancel)
            _write_json_atomic(self.folder / HOLDER_FILE, asdict(holder))
            self._local.depth = 1
            try:
                yield
            finally:
                self._local.depth = 0
                self._hand_over()
                (self.folder / HOLDER_FILE).unlink(missing_ok=True)
        finally:
            handle.close()  # closing the descriptor releases the flock

    def _acquire(self, handle, holder: Holder, on_wait: Callable[[str], None] | None,
                 cancel: CancelToken | None) -> None:
        if _try_lock(handle):
            return
        marker = self.folder / WAITING_DIR / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        marker.parent.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(marker, asdict(holder))
        said, said_at = "", 0.0
        try:
            while not _try_lock(handle):
                if cancel is not None:
                    cancel.raise_if_cancelled()
                message = describe(self.holder())
                now = time.monotonic()
                if message != said or now - said_at >= REPEAT_MESSAGE_SECONDS:
                    said, said_at = message, now
                    log.info("%s (%s %s)", message, holder.kind, holder.task)
                    if on_wait is not None:
                        on_wait(message)
                time.sleep(self.poll_seconds)
        finally:
            marker.unlink(missing_ok=True)

    def _hand_over(self) -> None:
        if not any(h.kind == "training" for h in self.waiting()):
            return
        for free in self.before_training_takes_over:
            try:
                free()
            except Exception:  # noqa: BLE001 - freeing is best effort; the lease must still be released
                log.exception("freeing the device before training")


def _try_lock(handle) -> bool:  # noqa: ANN001 - a binary file object
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_holder(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text())
        return Holder(**{k: data[k] for k in ("kind", "task", "pid", "job_dir") if k in data})
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_json_atomic(path: Path, data: dict) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)
