"""Run a golden test on more than one CPU kernel path, so a machine-dependent fixture fails here first.

A fixture that only agrees with the kernels of the machine it was made on (oneDNN's blocked convolutions,
a given thread count's summation order) passes on its author's machine and fails on the next one. The
golden tests therefore also run with one thread and with oneDNN switched off: if a tolerance is tighter
than what the arithmetic can promise, one of these paths shows it on the developer's own machine.

Float64 goldens run on ``FLOAT64_KERNEL_PATHS`` (default and one thread) only: oneDNN has no float64
kernels, so PyTorch already runs float64 convolutions, linears and norms on its native kernels and the
"no-onednn" run would repeat the default run operation for operation.
``tests/foundation/test_kernel_paths.py`` checks that premise with the profiler, so the day a PyTorch
version sends float64 work to oneDNN, that test fails and the third path comes back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

KERNEL_PATHS = ("default", "one-thread", "no-onednn")
# The suite runs single-threaded (tests/conftest.py); the default path still sums in several threads as PyTorch
# does by default, so that it differs from the one-thread path even on a machine that defaults to one.
DEFAULT_THREADS = max(2, torch.get_num_threads())
FLOAT64_KERNEL_PATHS = ("default", "one-thread")


@contextmanager
def kernel_path(name: str) -> Iterator[None]:
    """Computation inside runs on the named path: PyTorch's defaults (several threads), one thread, or oneDNN
    disabled (with the default threads)."""
    if name not in KERNEL_PATHS:
        raise ValueError(f"unknown kernel path {name!r}; expected one of {KERNEL_PATHS}")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1 if name == "one-thread" else DEFAULT_THREADS)
        with torch.backends.mkldnn.flags(enabled=name != "no-onednn"):
            yield
    finally:
        torch.set_num_threads(threads)
