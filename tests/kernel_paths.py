"""Run a golden test on more than one CPU kernel path, so a machine-dependent fixture fails here first.

A fixture that only agrees with the kernels of the machine it was made on (oneDNN's blocked convolutions,
a given thread count's summation order) passes on its author's machine and fails on the next one. The
golden tests therefore also run with one thread and with oneDNN switched off: if a tolerance is tighter
than what the arithmetic can promise, one of these paths shows it on the developer's own machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

KERNEL_PATHS = ("default", "one-thread", "no-onednn")


@contextmanager
def kernel_path(name: str) -> Iterator[None]:
    """Computation inside runs on the named path: PyTorch's defaults, one thread, or oneDNN disabled."""
    if name not in KERNEL_PATHS:
        raise ValueError(f"unknown kernel path {name!r}; expected one of {KERNEL_PATHS}")
    threads = torch.get_num_threads()
    try:
        if name == "one-thread":
            torch.set_num_threads(1)
        with torch.backends.mkldnn.flags(enabled=name != "no-onednn"):
            yield
    finally:
        torch.set_num_threads(threads)
