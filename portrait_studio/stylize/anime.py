"""Photo to anime with AnimeGANv2: align the face (or take the whole picture) and run one generator pass.

Faces are found by ``portrait_studio.faces`` (facexlib, or dlib offline) and aligned to the FFHQ
template, the framing the face models were trained on. Styles are the four published PyTorch
generators (roles ``animegan_<style>``). Weights are read with
``torch.load(weights_only=True)`` (or from a ``.safetensors`` conversion beside them) and loaded
strictly into our own :class:`AnimeGANGenerator`; loaded generators are cached, in the app's
``ModelManager`` cache when one is given, else in the process's model cache (``process_cache``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from portrait_studio.config import Settings
from portrait_studio.errors import InputError, MissingWeightsError
from portrait_studio.faces.align import align_face
from portrait_studio.faces.backends import get_face_backend
from portrait_studio.models.devices import pick_device
from portrait_studio.models.locator import ModelLocator, download_command, is_random_weights
from portrait_studio.models.process_cache import file_key, process_cache
from portrait_studio.models.roles import ANIMEGAN_STYLES
from portrait_studio.progress import CancelToken, ProgressFn, no_progress
from portrait_studio.stylize.anime_options import DEFAULT_STYLE, MODES, STYLES
from portrait_studio.stylize.animegan_net import (
    AnimeGANGenerator,
    build_animegan_tiny,
    generator_from_state_dict,
    read_state_dict,
    state_dict_problems,
)

if TYPE_CHECKING:
    from portrait_studio.models.manager import ModelManager

__all__ = ["MODES", "STYLES", "AnimeResult", "anime_portrait", "build_animegan_tiny", "load_generator"]

MIN_SIZE, MAX_SIZE = 64, 2048
# Both encoder stages halve the size; multiples of 8 keep every stage exact for either upsampling mode.
SIDE_MULTIPLE = 8

RANDOM_WEIGHTS_WARNING = (
    "This picture comes from a random-weight test model (tiny profile): it is noise, not a result. "
    "Download the real weights (python -m portrait_studio download --roles anime) and use the default profile."
)


@dataclass
class AnimeResult:
    image: Image.Image
    random_weights: bool
    warnings: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def role_for(style: str) -> str:
    if style not in ANIMEGAN_STYLES:
        raise InputError(f"Unknown anime style '{style}'. Choose one of: {', '.join(STYLES)}.")
    return f"animegan_{style}"


# ---- loading ------------------------------------------------------------------------------------------
def weights_file(path: Path) -> Path:
    """Prefer a ``.safetensors`` conversion next to the published ``.pt`` when someone made one."""
    if path.suffix == ".pt":
        converted = path.with_suffix(".safetensors")
        if converted.is_file():
            return converted
    return path


def load_generator(path: Path, role: str) -> AnimeGANGenerator:
    """Read ``path`` and load it strictly; a damaged or foreign file is a :class:`MissingWeightsError`."""
    redo = f"delete {path} and run: {download_command(role)}"
    try:
        state = read_state_dict(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise MissingWeightsError(role, str(path), download_command(role),
                                  f"cannot read it as AnimeGANv2 weights: {str(exc)[:120]}; {redo}") from exc
    problems = state_dict_problems(state)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise MissingWeightsError(role, str(path), download_command(role),
                                  f"not an AnimeGANv2 generator ({shown}); {redo}")
    return generator_from_state_dict(state)


def _file_key(path: Path, role: str, device: torch.device) -> str:
    """A changed file (new mtime or size) gets a new key: the cache never serves stale weights."""
    stat = path.stat()
    return file_key(role, f"{path.resolve()}@{stat.st_mtime_ns}:{stat.st_size}", device, "generator")


def clear_cache(settings: Settings) -> None:
    """Forget the generators loaded without a manager (they live in the process's model cache)."""
    for role in (role_for(style) for style in ANIMEGAN_STYLES):
        process_cache(settings).remove(f"{role}:generator@")


# ---- image preparation --------------------------------------------------------------------------------
def _check_request(style: str, mode: str, size: int) -> str:
    role = role_for(style)
    if mode not in MODES:
        raise InputError(
            f"Unknown anime mode '{mode}'. Choose 'face' (align the face first) or 'full' (whole picture)."
        )
    if isinstance(size, bool) or not isinstance(size, (int, float)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise InputError(f"Size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size!r}.")
    return role


def _as_rgb(image: Image.Image, settings: Settings) -> Image.Image:
    if not isinstance(image, Image.Image):
        raise InputError(f"Expected a picture, got {type(image).__name__}.")
    if image.width < 16 or image.height < 16:
        raise InputError(
            f"The picture is {image.width}x{image.height} pixels; use one at least 16 pixels on each side."
        )
    if image.width * image.height > settings.max_image_pixels:
        raise InputError(
            f"The picture has {image.width * image.height:,} pixels; the limit is {settings.max_image_pixels:,}. "
            "Use a smaller picture."
        )
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # Transparent areas become white, not black, which suits portraits.
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def full_frame_size(width: int, height: int, size: int) -> tuple[int, int]:
    """Scale so the long side is ``size``, both sides rounded to the network's multiple (at least one)."""
    scale = size / max(width, height)

    def side(value: int) -> int:
        return max(SIDE_MULTIPLE, int(round(value * scale / SIDE_MULTIPLE)) * SIDE_MULTIPLE)

    return side(width), side(height)


def _to_tensor(image: Image.Image, device: torch.device) -> torch.Tensor:
    # Same normalisation as the reference: to_tensor(img) * 2 - 1, i.e. [0, 255] -> [-1, 1].
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).to(device)


def _to_image(output: torch.Tensor) -> Image.Image:
    array = ((output[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array)


# ---- service ----------------------------------------------------------------------------------------------
def anime_portrait(
    image: Image.Image,
    settings: Settings,
    style: str = DEFAULT_STYLE,
    mode: str = "face",
    size: int = 512,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
    manager: ModelManager | None = None,
) -> AnimeResult:
    """Turn ``image`` into an anime picture.

    ``mode="face"``: find the largest face, cut an aligned ``size`` x ``size`` square around it and
    stylize that (no face is an :class:`InputError`). ``mode="full"``: stylize the whole picture with
    its long side scaled to ``size``. ``manager`` (a ``ModelManager``) shares its model cache and device.
    """
    cancel = cancel or CancelToken()
    role = _check_request(style, mode, size)
    size = int(size)
    rgb = _as_rgb(image, settings)
    warnings: list[str] = []
    metadata: dict[str, Any] = {"task": "anime", "style": style, "mode": mode}

    progress(0.0, "Preparing the picture")
    random_weights = False
    if mode == "face":
        progress(0.05, "Finding the face")
        size = max(SIDE_MULTIPLE, size // SIDE_MULTIPLE * SIDE_MULTIPLE)
        work, face_count, face_box, detector_random = _face_crop(rgb, settings, size)
        if face_count > 1:
            warnings.append(f"{face_count} faces found; used the largest one.")
        if detector_random:
            random_weights = True
            warnings.append("The face detector has random test weights: the face crop is arbitrary.")
        metadata["face_box"] = face_box
    else:
        work = rgb.resize(full_frame_size(rgb.width, rgb.height, size), Image.Resampling.LANCZOS)
    cancel.raise_if_cancelled()

    progress(0.3, "Loading the anime model")
    locator = manager.locator if manager is not None else ModelLocator(settings)
    path = weights_file(locator.path(role))
    generator_random = is_random_weights(path)
    random_weights = random_weights or generator_random
    cancel.raise_if_cancelled()

    progress(0.5, "Drawing")
    started = time.perf_counter()
    if manager is not None:
        key = f"{role}:generator"
        with manager.cache.use(key, loaders={key: lambda: load_generator(path, role)}) as parts:
            output = _run(parts[key], work)
    else:
        cache = process_cache(settings)
        key = _file_key(path, role, pick_device(settings.device))
        with cache.use(key, loaders={key: lambda: load_generator(path, role)}) as parts:
            output = _run(parts[key], work)
    if generator_random:
        warnings.append(RANDOM_WEIGHTS_WARNING)
    metadata.update({
        "width": output.width, "height": output.height, "model": locator.source_description(role),
        "random_weights": random_weights, "seconds": round(time.perf_counter() - started, 3),
    })
    progress(1.0, "Done")
    return AnimeResult(image=output, random_weights=random_weights, warnings=warnings, metadata=metadata)


def _face_crop(rgb: Image.Image, settings: Settings, size: int) -> tuple[Image.Image, int, list[float], bool]:
    """The FFHQ-aligned square of the largest face, how many faces there were, its box, random detector."""
    backend = get_face_backend(settings)
    pixels = np.asarray(rgb)
    faces = sorted(backend.detect(pixels), key=lambda face: face.area, reverse=True)
    if not faces:
        raise InputError(
            "No face found in the picture. Use a photo with one clearly visible, roughly frontal face, "
            "or choose mode 'full' to stylize the whole picture."
        )
    aligned = align_face(pixels, faces[0].landmarks5, crop_size=size)
    box = [round(float(v), 1) for v in faces[0].box]
    return aligned.image, len(faces), box, bool(getattr(backend, "random_weights", False))


def _run(net: AnimeGANGenerator, image: Image.Image) -> Image.Image:
    device = next(net.parameters()).device
    with torch.inference_mode():
        return _to_image(net(_to_tensor(image, device)))
