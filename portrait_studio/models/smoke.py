"""``doctor --smoke``: load every present role and run the smallest real request of each tab.

Each tab runs at its lowest size and step count, into a temporary folder that is removed afterwards,
with its wall time and peak memory: on CUDA the peak the allocator saw during the tab, elsewhere the
process's peak resident size so far (the only figure the OS keeps; it never goes down, so later tabs
show at least the earlier ones' peak). A tab whose roles are missing is skipped, not failed: ``doctor``
already lists those roles.
"""

from __future__ import annotations

import math
import resource
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path

from portrait_studio.config import Settings
from portrait_studio.errors import PortraitStudioError
from portrait_studio.models.locator import ModelLocator

SMALLEST_SIDE = 64


def _peak_mb(device_type: str) -> float:
    import torch

    if device_type == "cuda":
        return torch.cuda.max_memory_allocated() / 1e6
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1e6 if sys.platform == "darwin" else rss / 1e3  # bytes on macOS, KiB on Linux


def _sample_portrait():  # noqa: ANN202 - a PIL image
    """A real face shipped inside matplotlib (public domain portrait of Grace Hopper)."""
    import matplotlib.cbook
    from PIL import Image

    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as image:
        return image.convert("RGB")


def _voiced_wav(path: Path, seconds: float = 1.0, rate: int = 16_000) -> Path:
    """A short vowel-like sound (harmonics of 140 Hz with a syllable rhythm): enough for the talk pipeline."""
    frames = bytearray()
    for i in range(int(seconds * rate)):
        t = i / rate
        envelope = 0.5 + 0.5 * math.sin(2 * math.pi * 4 * t)
        value = sum(math.sin(2 * math.pi * 140 * k * t) / k for k in (1, 2, 3, 5))
        frames += int(9000 * envelope * value / 2).to_bytes(2, "little", signed=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    return path


def _stylize(settings: Settings, manager, work: Path) -> str:  # noqa: ANN001
    from portrait_studio.stylize.request import StylizeRequest
    from portrait_studio.stylize.service import stylize

    request = StylizeRequest(prompt="a portrait photo", n=1, steps=1, width=SMALLEST_SIDE, height=SMALLEST_SIDE, seed=0)
    result = stylize(manager, request, settings)
    return f"1 image {result.images[0].image.size[0]}x{result.images[0].image.size[1]}, 1 step"


def _animate(settings: Settings, manager, work: Path) -> str:  # noqa: ANN001
    from portrait_studio.animate.request import MIN_FRAMES, AnimateRequest
    from portrait_studio.animate.service import animate

    request = AnimateRequest(prompt="a portrait, smiling", frames=MIN_FRAMES, steps=1, seed=0,
                             width=SMALLEST_SIDE, height=SMALLEST_SIDE)
    animate(manager, request, work, name="smoke")
    return f"{MIN_FRAMES} frames {SMALLEST_SIDE}x{SMALLEST_SIDE}, 1 step"


def _anime(settings: Settings, manager, work: Path) -> str:  # noqa: ANN001
    from portrait_studio.stylize.anime import anime_portrait

    anime_portrait(_sample_portrait(), settings, mode="full", size=SMALLEST_SIDE, manager=manager)
    return f"1 picture, {SMALLEST_SIDE} px"


def _faces(settings: Settings, manager, work: Path) -> str:  # noqa: ANN001
    import numpy as np

    from portrait_studio.faces.backends import get_face_backend

    backend = get_face_backend(settings)
    rgb = np.asarray(_sample_portrait())
    faces = backend.detect(rgb)
    if faces:
        backend.embed(rgb, faces[0])
    return f"{backend.name}: {len(faces)} face(s) found and embedded"


def _talk(settings: Settings, manager, work: Path) -> str:  # noqa: ANN001
    from portrait_studio.talk import TalkOptions, talk

    audio = _voiced_wav(work / "voice.wav")
    result = talk(_sample_portrait(), audio, work / "talk.mp4", settings, TalkOptions(still=True), manager=manager)
    return f"{result.frames} frames at 256 px"


# (tab, roles it needs, runner). Train Likeness is represented by its first stage (face analysis): a
# training run is a separate job measured in minutes, not a smoke test.
TABS: list[tuple[str, tuple[str, ...], Callable]] = [
    ("stylize", ("base",), _stylize),
    ("anime", ("animegan_face_paint_512_v2",), _anime),
    ("animate", ("base", "motion_adapter"), _animate),
    ("train", (), _faces),
    ("talk", ("sadtalker",), _talk),
]


def run_smoke(settings: Settings, tabs: list[str] | None = None) -> list[dict]:
    import torch

    from portrait_studio.models.manager import ModelManager

    manager = ModelManager(settings)
    locator = ModelLocator(settings)
    results = []
    for tab, roles, runner in TABS:
        if tabs and tab not in tabs:
            continue
        missing = [r for r in roles if not locator.is_available(r)]
        if missing:
            results.append({"tab": tab, "skipped": f"skipped: {', '.join(missing)} missing", "seconds": None})
            continue
        if manager.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        entry: dict = {"tab": tab}
        with tempfile.TemporaryDirectory(prefix="doctor-smoke-") as tmp:
            try:
                entry["result"] = runner(settings, manager, Path(tmp))
            except PortraitStudioError as exc:
                entry["error"] = str(exc)
        entry["seconds"] = round(time.perf_counter() - start, 3)
        entry["peak_mb"] = round(_peak_mb(manager.device.type), 1)
        results.append(entry)
    return results
