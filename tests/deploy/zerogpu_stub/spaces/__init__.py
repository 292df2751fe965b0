"""A stand-in for Hugging Face's ``spaces`` package that behaves like ZeroGPU at the call boundary.

On a ZeroGPU Space, ``spaces.GPU`` runs the handler in a forked worker: arguments and the result (or
the exception) cross a process boundary by pickling, and the requested duration is sent to the
scheduler. This stub does the same round trips in-process and appends ``name duration`` to the file
named by ``ZEROGPU_STUB_LOG``, so a test can see which handlers asked for a GPU and for how long.
"""

from __future__ import annotations

import functools
import os
import pickle
import sys

if "gradio" in sys.modules:  # the real package refuses too: it must be imported before gradio
    raise ImportError("spaces must be imported before gradio")


def _record(line: str) -> None:
    path = os.environ.get("ZEROGPU_STUB_LOG")
    if path:
        with open(path, "a") as handle:
            handle.write(line + "\n")


# ZeroGPU needs `spaces` before torch touches CUDA: the test reads whether torch was already imported here.
_record(f"imported torch_loaded={'torch' in sys.modules}")


def GPU(task=None, *, duration=None, size=None):  # noqa: N802 - the real package's name
    def wrap(fn):
        _record(f"decorated {fn.__module__}.{fn.__qualname__} {duration}")

        @functools.wraps(fn)
        def run_in_worker(*args, **kwargs):
            args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))  # as the arg queue does
            _record(f"call {fn.__qualname__} {duration}")
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                raise pickle.loads(pickle.dumps(exc)) from None  # exceptions come back pickled too
            return pickle.loads(pickle.dumps(result))

        return run_in_worker

    return wrap(task) if callable(task) else wrap
