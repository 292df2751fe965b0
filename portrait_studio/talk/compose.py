"""Turning rendered face crops into video frames: aspect restore, paste-back, optional enhancement."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from PIL import Image, ImageFilter

from portrait_studio.config import Settings
from portrait_studio.progress import CancelToken, ProgressFn
from portrait_studio.talk.preprocess import CropBox


def finish_frames(rendered: list[np.ndarray], portrait: Image.Image, box: CropBox, mode: str) -> Iterator[np.ndarray]:
    """Video frames, one at a time (full-size frames of a long clip would not fit in memory together)."""
    if mode == "full":
        yield from paste_back(rendered, portrait, box)
        return
    # The crop was squashed to a square; give it back the crop's aspect ratio.
    size = rendered[0].shape[1]
    w, h = box.size
    target = (size, max(2, int(size * h / w)))
    for frame in rendered:
        same = target == (size, frame.shape[0])
        yield frame if same else np.asarray(Image.fromarray(frame).resize(target, Image.LANCZOS))


def paste_back(rendered: list[np.ndarray], portrait: Image.Image, box: CropBox) -> Iterator[np.ndarray]:
    """Each rendered crop resized into its box in the portrait, with a feathered edge (no seam)."""
    w, h = box.size
    feather = max(2, min(w, h) // 16)
    mask = Image.new("L", (w, h), 0)
    mask.paste(255, (feather, feather, w - feather, h - feather))
    alpha = np.asarray(mask.filter(ImageFilter.GaussianBlur(feather / 2)), dtype=np.float32)[..., None] / 255.0
    base_u8 = np.asarray(portrait.convert("RGB"))
    region = base_u8[box.top:box.bottom, box.left:box.right].astype(np.float32)
    for crop in rendered:
        patch = np.asarray(Image.fromarray(crop).resize((w, h), Image.LANCZOS), dtype=np.float32)
        frame = base_u8.copy()
        frame[box.top:box.bottom, box.left:box.right] = (region * (1 - alpha) + patch * alpha).round().astype(np.uint8)
        yield frame


def enhancer_available() -> bool:
    try:
        from portrait_studio.faces import restore  # noqa: F401
    except ImportError:
        return False
    return True


def enhancer_is_random(manager) -> bool:  # noqa: ANN001 - ModelManager, imported lazily
    from portrait_studio.models.locator import is_random_weights

    try:
        return is_random_weights(manager.locator.path("gfpgan", download=False))
    except Exception:  # noqa: BLE001 - unknown means "not known to be real"
        return True


def enhance_frames(
    frames: Iterable[np.ndarray], total: int, settings: Settings, progress: ProgressFn, cancel: CancelToken
) -> Iterator[np.ndarray]:
    from portrait_studio.faces.restore import restore_faces

    for i, frame in enumerate(frames):
        cancel.raise_if_cancelled()
        yield np.asarray(restore_faces(Image.fromarray(frame), settings))
        progress((i + 1) / total, f"enhancing {i + 1}/{total}")
