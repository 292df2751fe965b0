"""GPU scheduling for event handlers: one shared queue slot, a process-wide GPU lock, and ZeroGPU on Spaces.

Every handler that runs a model is decorated with ``@on_gpu(seconds, task=...)`` and its event uses
``**GPU_QUEUE`` (one ``concurrency_id`` with limit 1), so Gradio's queue runs at most one such job at a
time and shows the others their place in line. The decorator adds, around the handler:

- a count of GPU handlers in flight, logged on every start (``gpu-slot start task=... in_flight=N``), so the
  one-at-a-time promise is observable from outside (the load test reads these lines);
- a process-wide lock as a backstop: a job whose client went away keeps its thread until it ends, and the
  next job waits for it instead of sharing the device;
- the device lease shared with training workers and CLI commands (:mod:`portrait_studio.models.lease`):
  while a training job holds the card the request waits, and its progress line names the job and its ETA;
- the fault-injection hook of :mod:`portrait_studio.faults` (inert unless its environment variable is set);
- on a ZeroGPU Space, ``spaces.GPU(duration=seconds)`` so a GPU is attached for the call (a no-op elsewhere).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

from portrait_studio.models.lease import DeviceLease, Holder

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)

GPU_QUEUE = {"concurrency_id": "gpu", "concurrency_limit": 1}


def zero_gpu() -> bool:
    """True on a ZeroGPU Space (the same reading of ``SPACES_ZERO_GPU`` as the ``spaces`` package)."""
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "t", "true")


@dataclass
class GpuStats:
    in_flight: int = 0
    peak_in_flight: int = 0
    started: int = 0
    finished: int = 0


class GpuSlot:
    """Counts GPU handlers in flight and serialises them with one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # held while a handler uses the device
        self._count_lock = threading.Lock()
        self.stats = GpuStats()
        self.lease: DeviceLease | None = None  # set by build_app from Services (off on ZeroGPU)

    def run(self, task: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self._count_lock:
            self.stats.in_flight += 1
            self.stats.started += 1
            in_flight = self.stats.in_flight
            self.stats.peak_in_flight = max(self.stats.peak_in_flight, in_flight)
        # in_flight counts handlers that entered, before the lock: more than 1 means the queue let two run.
        log.info("gpu-slot start task=%s in_flight=%d", task, in_flight)
        began = time.monotonic()
        waited = 0.0
        try:
            with self._lock, self._device(task, args, kwargs):
                waited = time.monotonic() - began
                return fn(*args, **kwargs)
        finally:
            with self._count_lock:
                self.stats.in_flight -= 1
                self.stats.finished += 1
            log.info("gpu-slot end task=%s seconds=%.2f waited=%.2f", task, time.monotonic() - began, waited)


    def _device(self, task: str, args: tuple, kwargs: dict) -> AbstractContextManager[None]:
        if self.lease is None:
            return nullcontext()
        return self.lease.hold(Holder("request", task), on_wait=_tell_waiting(args, kwargs))


def _tell_waiting(args: tuple, kwargs: dict) -> Callable[[str], None]:
    """Show why a request waits for the device: on its progress bar, and once as a notice."""
    import gradio as gr

    bars = [value for value in (*args, *kwargs.values()) if isinstance(value, gr.Progress)]
    told: list[str] = []

    def tell(message: str) -> None:
        for bar in bars:
            try:
                bar(0.0, desc=message)
            except Exception:  # noqa: BLE001 - no event context (direct calls in tests): the log has it
                log.debug("progress bar unavailable for %r", message)
        if not told:
            told.append(message)
            try:
                gr.Info(message)
            except Exception:  # noqa: BLE001 - as above
                log.debug("notice unavailable for %r", message)

    return tell


GPU_SLOT = GpuSlot()


def _task_name(fn: Callable[..., Any]) -> str:
    module = fn.__module__.rsplit(".", 1)[-1]  # ui.stylize_tab -> stylize
    return module.removesuffix("_tab") or fn.__name__


def on_gpu(seconds: int, task: str | None = None) -> Callable[[F], F]:
    """Wrap a model-running handler (see the module doc); ``task`` defaults to the tab name (``stylize``...)."""

    def wrap(fn: F) -> F:
        name = task or _task_name(fn)

        @functools.wraps(fn)
        def with_faults(*args: Any, **kwargs: Any) -> Any:
            from portrait_studio import faults
            from ui.common import call_service

            # Runs where the model runs (inside the ZeroGPU worker on Spaces), through the same error
            # mapping as a real failure of the service.
            call_service(faults.inject, name)
            return fn(*args, **kwargs)

        device_fn: Callable[..., Any] = with_faults
        if zero_gpu():
            import spaces

            device_fn = spaces.GPU(duration=seconds)(with_faults)

        @functools.wraps(fn)
        def handler(*args: Any, **kwargs: Any) -> Any:
            return GPU_SLOT.run(name, device_fn, *args, **kwargs)

        handler.gpu_task = name  # type: ignore[attr-defined]
        handler.gpu_seconds = seconds  # type: ignore[attr-defined]
        return handler  # type: ignore[return-value]

    return wrap


def check_gpu_events(demo: Any) -> None:
    """Refuse to start when a model handler's event is outside the GPU queue (a forgotten ``**GPU_QUEUE``)."""
    wrong = [
        f"{getattr(block.fn, 'gpu_task', '?')} ({getattr(block.fn, '__name__', '?')}, api_name={block.api_name})"
        for block in demo.fns.values()
        if getattr(block.fn, "gpu_task", None)
        and (block.concurrency_id != GPU_QUEUE["concurrency_id"] or block.concurrency_limit != 1)
    ]
    if wrong:
        raise RuntimeError(f"GPU handlers wired without **GPU_QUEUE: {', '.join(wrong)}")
