"""Device faults: out-of-memory named for the user, and a test hook that injects faults on purpose.

A model job that runs out of device memory raises ``torch.OutOfMemoryError`` (or a ``RuntimeError``
saying "out of memory" on older backends). :func:`out_of_memory_error` turns it into the typed
:class:`~portrait_studio.errors.OutOfMemoryError` with what to lower; the UI does that in one place.

Fault injection, for tests and drills only, is switched on by an environment variable::

    PORTRAIT_STUDIO_INJECT_FAULT=oom:stylize:1           # the first stylize job runs out of memory
    PORTRAIT_STUDIO_INJECT_FAULT=oom:stylize:2,error:talk:1,slow:check_photos:1:6

Each entry is ``KIND:TASK:COUNT[:SECONDS]``: the next COUNT jobs of TASK meet KIND: ``oom`` raises
``torch.OutOfMemoryError``, ``error`` a plain ``RuntimeError`` (standing for a bug), ``slow`` holds the
job SECONDS (default 5) before it runs, as a stuck or very long job would. TASK is the GPU task name
(``stylize``, ``animate``, ``talk``, ``check_photos``). Unset, nothing happens.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

from portrait_studio.errors import InputError, OutOfMemoryError

log = logging.getLogger(__name__)
FAULT_ENV = "PORTRAIT_STUDIO_INJECT_FAULT"
FAULT_KINDS = ("oom", "error", "slow")
DEFAULT_SLOW_SECONDS = 5.0


@dataclass
class _Plan:
    kind: str
    remaining: int
    seconds: float = DEFAULT_SLOW_SECONDS


def parse_faults(raw: str) -> dict[str, _Plan]:
    """``"oom:stylize:1,slow:talk:2:8"`` -> {task: plan}; a malformed spec is an error, never ignored."""
    plans: dict[str, _Plan] = {}
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        fields = entry.split(":")
        seconds = fields[3] if len(fields) == 4 else str(DEFAULT_SLOW_SECONDS)
        valid = (
            len(fields) in (3, 4) and fields[0] in FAULT_KINDS and fields[1] and fields[2].isdigit()
            and seconds.replace(".", "", 1).isdigit() and (len(fields) == 3 or fields[0] == "slow")
        )
        if not valid:
            raise InputError(
                f"{FAULT_ENV} entry {entry!r} should look like KIND:TASK:COUNT (or slow:TASK:COUNT:SECONDS) "
                f"with KIND one of {', '.join(FAULT_KINDS)}, e.g. oom:stylize:1."
            )
        plans[fields[1]] = _Plan(fields[0], int(fields[2]), float(seconds))
    return plans


class FaultInjector:
    """Counts down the planned faults per task; thread-safe (jobs run on gradio's worker threads)."""

    def __init__(self, spec: str = "") -> None:
        self._plans = parse_faults(spec)
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return bool(self._plans)

    def maybe_fail(self, task: str) -> None:
        with self._lock:
            plan = self._plans.get(task)
            if plan is None or plan.remaining <= 0:
                return
            plan.remaining -= 1
        log.warning("injecting a %s fault into %s (%s)", plan.kind, task, FAULT_ENV)
        if plan.kind == "slow":
            time.sleep(plan.seconds)
            return
        if plan.kind == "oom":
            import torch

            raise torch.OutOfMemoryError(f"CUDA out of memory (injected by {FAULT_ENV} for {task}).")
        raise RuntimeError(f"injected failure in {task} ({FAULT_ENV})")


_injector: FaultInjector | None = None
_injector_lock = threading.Lock()


def injector() -> FaultInjector:
    """The process-wide injector, configured from the environment on first use."""
    global _injector
    with _injector_lock:
        if _injector is None:
            _injector = FaultInjector(os.environ.get(FAULT_ENV, ""))
        return _injector


def inject(task: str) -> None:
    """Raise the fault planned for ``task`` if there is one (no-op unless ``PORTRAIT_STUDIO_INJECT_FAULT`` is set)."""
    injector().maybe_fail(task)


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, OutOfMemoryError):
        return True
    import sys

    torch = sys.modules.get("torch")  # no torch loaded means no torch error to recognise
    oom_type = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def release_device_memory() -> None:
    """Give cached blocks back to the driver after an out-of-memory, so the next job starts clean."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def out_of_memory_error(exc: BaseException, task: str = "this job") -> OutOfMemoryError:
    """The user-facing error for a device out-of-memory, with what to lower."""
    if isinstance(exc, OutOfMemoryError):
        return exc
    return OutOfMemoryError(
        f"The GPU ran out of memory during {task}. Nothing was saved from this run. Try again with a smaller "
        "size, fewer images or frames, or fewer steps; close other programs that use the GPU; or set "
        "PORTRAIT_STUDIO_DTYPE=float16. The next job starts with the memory freed."
    )
