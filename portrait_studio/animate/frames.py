"""Frame utilities for Animate: fitting a portrait to the video size, in-between frames, the frames zip."""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from portrait_studio.media.outputs import png_info


def fit_portrait(image: Image.Image, width: int, height: int) -> Image.Image:
    """Center-crop ``image`` to the video's aspect ratio and resize it to ``width`` x ``height`` (RGB)."""
    # Slightly above center: portraits have the face in the upper half.
    return ImageOps.fit(image.convert("RGB"), (width, height), Image.Resampling.LANCZOS, centering=(0.5, 0.4))


def interpolate(frames: list[np.ndarray], method: str) -> list[np.ndarray]:
    """Insert one in-between frame after every frame but the last (n -> 2n - 1, to play at double fps).

    ``blend`` averages neighbours (cheap, ghosts on large motion); ``flow`` warps both neighbours halfway
    along OpenCV Farneback optical flow and averages the warps (sharper on camera moves).
    """
    if method == "none" or len(frames) < 2:
        return list(frames)
    middle = _flow_middle if method == "flow" else _blend_middle
    result: list[np.ndarray] = []
    for current, following in zip(frames[:-1], frames[1:], strict=True):
        result.append(current)
        result.append(middle(current, following))
    result.append(frames[-1])
    return result


def _blend_middle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a.astype(np.uint16) + b.astype(np.uint16) + 1) // 2).astype(np.uint8)


def _flow_middle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import cv2

    gray_a = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    gray_b = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    params = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
    flow_ab = cv2.calcOpticalFlowFarneback(gray_a, gray_b, None, **params)
    flow_ba = cv2.calcOpticalFlowFarneback(gray_b, gray_a, None, **params)
    h, w = gray_a.shape
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    # Backward warping: the middle pixel p comes from a at p - flow/2 and from b at p + flow/2 (approx.).
    from_a = cv2.remap(a, grid_x - 0.5 * flow_ab[..., 0], grid_y - 0.5 * flow_ab[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    from_b = cv2.remap(b, grid_x - 0.5 * flow_ba[..., 0], grid_y - 0.5 * flow_ba[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    return _blend_middle(from_a, from_b)


def to_arrays(frames: list[Image.Image]) -> list[np.ndarray]:
    return [np.asarray(frame.convert("RGB"), dtype=np.uint8) for frame in frames]


def write_frames_zip(frames: list[np.ndarray], path: Path, metadata: dict[str, Any]) -> Path:
    """PNG frames (``frame_0000.png`` ...) plus ``metadata.json`` in one zip, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    info = png_info(metadata)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".zip")
    try:
        with os.fdopen(fd, "wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
            for index, frame in enumerate(frames):
                buffer = io.BytesIO()
                Image.fromarray(frame).save(buffer, format="PNG", pnginfo=info)
                archive.writestr(f"frame_{index:04d}.png", buffer.getvalue())
            archive.writestr("metadata.json", json.dumps(metadata, indent=2, sort_keys=True, default=str))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
