"""Turn every way a published weights file can fail to load into one typed error naming the file.

The loaders meet the real files for the first time on a user's machine. A pickle that ``weights_only``
refuses, a truncated download, a file with missing keys or wrong shapes: each ends as a
:class:`BadWeightsFileError` that says which file, what was wrong, and what to do, never a traceback.
Out-of-memory errors pass through untouched (they are not the file's fault).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from portrait_studio.errors import BadWeightsFileError, PortraitStudioError
from portrait_studio.faults import is_out_of_memory

# Text fragments of torch / safetensors / diffusers errors and what they mean for the user.
_TRUNCATED = (
    "pytorchstreamreader", "central directory", "unexpected eof", "ran out of input", "incomplete metadata",
    "error while deserializing header", "invalid load key", "unable to load weights", "not a zip file",
    "file is too small", "metadataincompletebuffer", "headertoolarge", "invalidheaderdeserialization",
)
_SHAPES = ("size mismatch", "wrong shape", "shape mismatch", "wrong-shaped")
_KEYS = ("missing key", "unexpected key", "missing,", "no '")


def describe_load_failure(exc: BaseException) -> tuple[str, str]:
    """(what was wrong, what to do) for an exception raised while reading a weights file."""
    text = str(exc).strip()
    first = _first_sentence(text) if text else type(exc).__name__
    lowered = text.lower()
    if isinstance(exc, pickle.UnpicklingError) or "weights only load failed" in lowered:
        # The same refusal on the genuine published file means the publisher changed it: re-fetching won't help.
        return (
            "a safe load (weights_only=True) refused an object in the pickle: " + _refused_global(text),
            "it is not the published file or the publisher changed it; delete it and fetch it again with `{command}`, "
            "and if the fresh copy is refused too, please report it",
        )
    if isinstance(exc, EOFError) or any(marker in lowered for marker in _TRUNCATED):
        return "the file is truncated or damaged: " + first, "delete it and fetch it again with `{command}`"
    if any(marker in lowered for marker in _SHAPES):
        return "tensors have the wrong shape: " + first, "it is not the published file; fetch it again with `{command}`"
    if isinstance(exc, KeyError) or any(marker in lowered for marker in _KEYS):
        return "expected entries are missing: " + first, "it is not the published file; fetch it again with `{command}`"
    return first, "delete it and fetch it again with `{command}`"


def _first_sentence(text: str) -> str:
    line = text.splitlines()[0]
    return re.split(r"(?<=[a-z0-9)])\. ", line, maxsplit=1)[0][:160]


def _refused_global(text: str) -> str:
    match = re.search(r"GLOBAL ([\w.]+)", text)
    if match:
        return f"{match.group(1)} is not allowed"
    return _first_sentence(text) if text else "an object that is not a tensor"


@contextmanager
def guard_weights_file(role: str, path: Path, command: str) -> Iterator[None]:
    """Re-raise any load failure inside the block as :class:`BadWeightsFileError` for ``path``."""
    try:
        yield
    except PortraitStudioError:
        raise
    except Exception as exc:  # noqa: BLE001 - every reader (torch, safetensors, diffusers) raises its own types
        if is_out_of_memory(exc):
            raise
        problem, advice = describe_load_failure(exc)
        raise BadWeightsFileError(role, str(path), command, problem, advice.format(command=command)) from exc
