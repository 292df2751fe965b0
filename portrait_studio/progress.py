"""Progress reporting and cooperative cancellation for long jobs.

Services take ``progress: ProgressFn`` (fraction in [0, 1], message) and ``cancel: CancelToken``;
both default to no-ops so library callers need not care.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Protocol

from portrait_studio.errors import CancelledError


class ProgressFn(Protocol):
    def __call__(self, fraction: float, message: str = "") -> None: ...


def no_progress(fraction: float, message: str = "") -> None:
    """Default progress callback: ignore."""


class CancelToken:
    """A thread-safe flag a job checks between steps (``token.raise_if_cancelled()``).

    With ``marker``, the file's existence also counts as cancelled: another process (ZeroGPU runs a call in
    a worker forked from the app) cancels by creating it, since it cannot reach this object.
    """

    def __init__(self, marker: Path | None = None, linked: CancelToken | None = None) -> None:
        self._event = threading.Event()
        self.marker = marker
        self.linked = linked  # a token whose cancel also cancels this one (a visitor job's own token)

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        if not self._event.is_set() and (
            (self.marker is not None and self.marker.exists()) or (self.linked is not None and self.linked.cancelled)
        ):
            self._event.set()
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self.cancelled:
            raise CancelledError()


class CancelTokens:
    """One live token per (session, task); the Cancel button trips it, the job stops within one step.

    With ``marker_dir`` (a folder in the home), a running job also leaves ``<job>.running`` there and Cancel
    writes ``<job>.cancel``, which its token watches: on ZeroGPU the job runs in a worker process whose
    tokens the app's Cancel button cannot reach, but both see the same files. ``<job>`` is a hash of the
    session and task (one running job per tab and browser session).
    """

    def __init__(self, marker_dir: Path | None = None) -> None:
        self._tokens: dict[tuple[str, str], CancelToken] = {}
        self._lock = threading.Lock()
        self.marker_dir = marker_dir

    def job_id(self, session: str, task: str) -> str:
        return hashlib.sha256(f"{session}\0{task}".encode()).hexdigest()[:32]

    def _marker(self, session: str, task: str, kind: str) -> Path | None:
        return self.marker_dir / f"{self.job_id(session, task)}.{kind}" if self.marker_dir else None

    def start(self, session: str, task: str, linked: CancelToken | None = None) -> CancelToken:
        cancel_marker = self._marker(session, task, "cancel")
        if cancel_marker is not None:
            cancel_marker.parent.mkdir(parents=True, exist_ok=True)
            cancel_marker.unlink(missing_ok=True)  # a Cancel meant for an earlier run
            self._marker(session, task, "running").touch()  # type: ignore[union-attr]
        token = CancelToken(cancel_marker, linked)
        with self._lock:
            self._tokens[(session, task)] = token
        return token

    def cancel(self, session: str, task: str) -> bool:
        with self._lock:
            token = self._tokens.get((session, task))
        running = self._marker(session, task, "running")
        if running is not None and running.exists():
            self._marker(session, task, "cancel").touch()  # type: ignore[union-attr]
            token = token or CancelToken()
        if token is None:
            return False
        token.cancel()
        return True

    def finish(self, session: str, task: str, token: CancelToken) -> None:
        with self._lock:
            if self._tokens.get((session, task)) is token:
                del self._tokens[(session, task)]
        for kind in ("running", "cancel"):
            marker = self._marker(session, task, kind)
            if marker is not None:
                marker.unlink(missing_ok=True)


def scaled(progress: ProgressFn, start: float, end: float) -> ProgressFn:
    """Map a sub-task's 0..1 progress into the [start, end] slice of a parent job."""

    def report(fraction: float, message: str = "") -> None:
        progress(start + (end - start) * min(max(fraction, 0.0), 1.0), message)

    return report
