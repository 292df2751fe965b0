"""Using the face adapter in a request: which encodings steer it, and the ``with`` block that applies it.

An instant likeness brings its stored encodings; a trained likeness may add the adapter too, on the
encodings of its own reference face (LoRA + adapter, each with its own weight). Stylize and Animate (and
anything else that renders with the shared UNet) call :func:`face_adapter_for` around the pipeline call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from portrait_studio.errors import InputError
from portrait_studio.instant.adapter import (
    ADAPTER_KEY,
    FaceCondition,
    adapter_weights,
    check_fits,
    checked_strength,
    face_adapter_applied,
)
from portrait_studio.instant.embeddings import encode_faces, load_encodings, negative_encoding
from portrait_studio.models.manager import ModelManager

DEFAULT_FACE_STRENGTH = 0.7  # for an instant likeness when the request does not say


def resolve_strength(strength: float | None, instant: bool) -> float:
    """The adapter strength of a request: the default for an instant likeness, off for a trained one."""
    if strength is None:
        return DEFAULT_FACE_STRENGTH if instant else 0.0
    return checked_strength(strength)


def face_condition(
    manager: ModelManager,
    label: str,
    strength: float,
    *,
    instant_path: Path | None = None,
    reference_path: Path | None = None,
) -> FaceCondition | None:
    """The encodings that steer the adapter for one likeness, or None when the strength is 0.

    Loads the adapter weights and image encoder now (MissingWeightsError before anything renders).
    """
    if strength <= 0:
        return None
    adapter_weights(manager)
    if instant_path is not None:
        positive = load_encodings(Path(instant_path), label)
    elif reference_path is not None and Path(reference_path).is_file():
        with Image.open(reference_path) as opened:
            positive = encode_faces(manager, [opened.convert("RGB")])
    else:
        raise InputError(
            f"The likeness '{label}' has no reference face, so the face adapter cannot be added; set the face "
            "strength to 0."
        )
    return FaceCondition(positive, negative_encoding(manager, int(positive.shape[0])), strength, label)


@contextlib.contextmanager
def face_adapter_for(
    manager: ModelManager, pipe: Any, condition: FaceCondition | None, guidance: float
) -> Iterator[dict[str, Any]]:
    """Apply the adapter to ``pipe`` for the block; yield the extra pipeline-call arguments ({} without one)."""
    if condition is None:
        yield {}
        return
    adapter_weights(manager)
    with manager.cache.use(ADAPTER_KEY) as parts:
        weights = parts[ADAPTER_KEY]
        check_fits(weights, pipe.unet, condition.positive, condition.label)
        with face_adapter_applied(pipe, weights, condition.strength):
            yield condition.call_kwargs(guidance, manager.device, pipe.unet.dtype)
