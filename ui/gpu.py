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
- on a ZeroGPU Space, ``spaces.GPU(duration=...)`` so a GPU is attached for the call (a no-op elsewhere).

On ZeroGPU (see :mod:`portrait_studio.gpu_time`): ``seconds`` is a function of the handler's own arguments,
so each call asks for what its size needs; a request over ZeroGPU's 300 s cap is refused before it is
scheduled, with the setting to lower; a quota refusal becomes a plain message; there is no process-wide
lock (each call runs in its own worker on its own GPU slice, and the platform schedules them); and every
call logs how many models it had to load (``gpu-call ... loads=N``), which must be 0 after the start-up
preload.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
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
        # On ZeroGPU each call gets its own GPU slice from the platform: no lock of ours in between.
        device_lock = contextlib.nullcontext() if zero_gpu() else self._lock
        try:
            with device_lock, self._device(task, args, kwargs):
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


QUOTA_TITLES = ("ZeroGPU quota exceeded", "ZeroGPU pending credits exceeded")
QUOTA_TEXT = re.compile(r"exceeded your .*quota|reached its GPU limit", re.IGNORECASE)
QUOTA_MESSAGE = (
    "This Space's free GPU time for you is used up for now ({asked}). Sign in with a Hugging Face account "
    "for a larger daily allowance, or try again later: the allowance comes back over a few hours."
)

# How many models the cache has loaded so far (set by app.py on ZeroGPU): a billed call should load none.
_load_count: Callable[[], int] | None = None


def watch_model_loads(count: Callable[[], int] | None) -> None:
    global _load_count
    _load_count = count


def is_quota_refusal(exc: BaseException) -> bool:
    """ZeroGPU's own refusal (``spaces`` raises ``gr.Error`` titled "ZeroGPU quota exceeded")."""
    return getattr(exc, "title", None) in QUOTA_TITLES or bool(QUOTA_TEXT.search(str(exc)))


def _quota_error(exc: BaseException, asked: int | None) -> Exception:
    import gradio as gr

    what = f"this request asked for {asked} s" if asked else "this request needs more than is left"
    return gr.Error(QUOTA_MESSAGE.format(asked=what), title="GPU quota", print_exception=False)


def on_gpu(seconds: int | Callable[..., int], task: str | None = None) -> Callable[[F], F]:
    """Wrap a model-running handler (see the module doc); ``task`` defaults to the tab name (``stylize``...).

    ``seconds`` is the GPU time to ask ZeroGPU for: a number, or a function of the handler's arguments
    (it may raise ``InputError`` to refuse a request that cannot fit one call).
    """

    def wrap(fn: F) -> F:
        name = task or _task_name(fn)

        def budget(*args: Any, **kwargs: Any) -> int:
            return int(seconds(*args, **kwargs)) if callable(seconds) else int(seconds)

        @functools.wraps(fn)
        def with_faults(*args: Any, **kwargs: Any) -> Any:
            from portrait_studio import faults
            from ui.common import call_service

            # Runs where the model runs (inside the ZeroGPU worker on Spaces), through the same error
            # mapping as a real failure of the service.
            loads_before = _load_count() if _load_count else None
            call_service(faults.inject, name)
            try:
                return fn(*args, **kwargs)
            finally:
                if loads_before is not None and _load_count is not None:
                    log.info("gpu-call task=%s loads=%d", name, _load_count() - loads_before)

        device_fn: Callable[..., Any] = with_faults
        if zero_gpu():
            import spaces

            device_fn = spaces.GPU(duration=budget)(with_faults)

        @functools.wraps(fn)
        def handler(*args: Any, **kwargs: Any) -> Any:
            asked = None
            if zero_gpu():
                from ui.common import call_service

                asked = call_service(budget, *args, **kwargs)  # refused up front when over the cap
                log.info("zerogpu request task=%s seconds=%d", name, asked)
            try:
                return GPU_SLOT.run(name, device_fn, *args, **kwargs)
            except Exception as exc:
                if zero_gpu() and is_quota_refusal(exc):
                    raise _quota_error(exc, asked) from exc
                raise

        handler.gpu_task = name  # type: ignore[attr-defined]
        handler.gpu_seconds = budget  # type: ignore[attr-defined]
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
