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
from portrait_studio.errors import InputError, PortraitStudioError
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


def _detect_sample_faces(settings: Settings):  # noqa: ANN202
    """The configured face backend, the sample portrait as RGB and the faces it finds there."""
    import numpy as np

    from portrait_studio.faces.backends import get_face_backend

    backend = get_face_backend(settings)
    rgb = np.asarray(_sample_portrait())
    return backend, rgb, backend.detect(rgb)


def _faces(settings: Settings, manager, work: Path) -> str:  # noqa: ANN001
    backend, rgb, faces = _detect_sample_faces(settings)
    if faces:
        backend.embed(rgb, faces[0])
    return f"{backend.name}: {len(faces)} face(s) found and embedded"


def _training(settings: Settings, manager, work: Path) -> str:  # noqa: ANN001
    """Two optimizer steps of the Balanced recipe (UNet and text-encoder LoRA) at the smallest size, one
    validation image scored against the sample face, the checkpoint merged: the training models load, their
    dtypes agree through validation, and the files are written. Quality is not judged."""
    from PIL import Image, ImageOps

    from portrait_studio.faces.similarity import FaceScorer
    from portrait_studio.likeness.config import preset_config
    from portrait_studio.likeness.trainer import train_lora

    backend, rgb, faces = _detect_sample_faces(settings)
    portrait = Image.fromarray(rgb)
    if not faces:
        raise InputError(f"the {backend.name} face backend found no face in the sample portrait")
    scorer = FaceScorer(backend, backend.embed(rgb, faces[0]))
    crops = work / "dataset" / "crops"
    crops.mkdir(parents=True)
    square = ImageOps.fit(portrait, (SMALLEST_SIDE, SMALLEST_SIDE))
    square.save(crops / "000.png")
    ImageOps.mirror(square).save(crops / "001.png")
    config = preset_config("Balanced", n_images=2, steps=2, resolution=SMALLEST_SIDE, validation_seeds=(1234,),
                           validation_steps=1, trigger="pssmoke")
    result = train_lora(manager, work / "dataset", work / "job", config, scorer)
    if not result.lora_file.is_file():
        raise InputError("the training smoke run wrote no LoRA file")
    return f"{result.steps} steps of the Balanced recipe at {SMALLEST_SIDE} px, 1 checkpoint merged"


def _talk(settings: Settings, manager, work: Path) -> str:  # noqa: ANN001
    from portrait_studio.talk import TalkOptions, talk

    audio = _voiced_wav(work / "voice.wav")
    result = talk(_sample_portrait(), audio, work / "talk.mp4", settings, TalkOptions(still=True), manager=manager)
    return f"{result.frames} frames at 256 px"


# (tab, roles it needs, runner). Train Likeness is its photo check ("train") and two steps of a training
# run ("training"): a real run is a job measured in minutes, but its first steps are where the training
# models meet the device (memory, dtypes).
TABS: list[tuple[str, tuple[str, ...], Callable]] = [
    ("stylize", ("base",), _stylize),
    ("anime", ("animegan_face_paint_512_v2",), _anime),
    ("animate", ("base", "motion_adapter"), _animate),
    ("train", (), _faces),
    ("training", ("base",), _training),
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
