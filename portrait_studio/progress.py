"""Progress reporting and cooperative cancellation for long jobs.

Services take ``progress: ProgressFn`` (fraction in [0, 1], message) and ``cancel: CancelToken``;
both default to no-ops so library callers need not care.
"""

from __future__ import annotations

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

    def __init__(self, marker: Path | None = None) -> None:
        self._event = threading.Event()
        self.marker = marker

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        if not self._event.is_set() and self.marker is not None and self.marker.exists():
            self._event.set()
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise CancelledError()


def scaled(progress: ProgressFn, start: float, end: float) -> ProgressFn:
    """Map a sub-task's 0..1 progress into the [start, end] slice of a parent job."""

    def report(fraction: float, message: str = "") -> None:
        progress(start + (end - start) * min(max(fraction, 0.0), 1.0), message)

    return report
