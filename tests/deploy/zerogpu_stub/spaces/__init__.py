"""A stand-in for Hugging Face's ``spaces`` package that behaves like ZeroGPU at the call boundary.

On a ZeroGPU Space, ``spaces.GPU`` runs the handler in a forked worker: arguments and the result (or
the exception) cross a process boundary by pickling, and the requested duration is sent to the
scheduler. This stub does the same round trips in-process and appends ``name duration`` to the file
named by ``ZEROGPU_STUB_LOG``, so a test can see which handlers asked for a GPU and for how long.

Like the real package, ``duration`` may be a function of the call's arguments (it is called with them
before scheduling); a request above 300 s is refused as illegal, and with ``ZEROGPU_STUB_QUOTA_SECONDS``
set the stub keeps a visitor quota and refuses a call that asks for more than is left, with the real
package's wording and title ("ZeroGPU quota exceeded").
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


MAX_DURATION = 300
_quota_used = 0


def _schedule(seconds: int) -> None:
    """The checks the real client makes before a call runs (spaces.zero.client.schedule)."""
    import gradio as gr

    global _quota_used
    if seconds > MAX_DURATION:
        raise gr.Error(f"The requested GPU duration ({seconds}s) is larger than the maximum allowed",
                       title="ZeroGPU illegal duration", print_exception=False)
    quota = os.environ.get("ZEROGPU_STUB_QUOTA_SECONDS")
    if quota:
        left = int(quota) - _quota_used
        if seconds > left:
            raise gr.Error(f"You have exceeded your ZeroGPU quota ({seconds}s requested vs. {left}s left). "
                           "Try again in 1:23:45. ", title="ZeroGPU quota exceeded", print_exception=False)
        _quota_used += seconds  # the real platform charges what was used; the request is an upper bound


# ZeroGPU needs `spaces` before torch touches CUDA: the test reads whether torch was already imported here.
_record(f"imported torch_loaded={'torch' in sys.modules}")


def GPU(task=None, *, duration=None, size=None):  # noqa: N802 - the real package's name
    def wrap(fn):
        shown = "dynamic" if callable(duration) else duration
        _record(f"decorated {fn.__module__}.{fn.__qualname__} {shown}")

        @functools.wraps(fn)
        def run_in_worker(*args, **kwargs):
            seconds = int(duration(*args, **kwargs) if callable(duration) else (duration or 60))
            _schedule(seconds)
            args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))  # as the arg queue does
            _record(f"call {fn.__qualname__} {seconds}")
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                raise pickle.loads(pickle.dumps(exc)) from None  # exceptions come back pickled too
            return pickle.loads(pickle.dumps(result))

        return run_in_worker

    return wrap(task) if callable(task) else wrap
