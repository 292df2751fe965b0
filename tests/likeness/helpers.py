"""Test helpers for likeness training: small datasets written with PIL, a fake scorer, tiny configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from portrait_studio.likeness.config import TrainingConfig


def grace_hopper() -> Image.Image:
    import matplotlib.cbook

    return Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")


def photo_variants(folder: Path, count: int = 5) -> list[Path]:
    """Real-photo variants of grace_hopper.jpg (crop, flip, rotation, blur, scale) as JPEG files."""
    folder.mkdir(parents=True, exist_ok=True)
    base = grace_hopper()
    variants = [
        base,
        ImageOps.mirror(base),
        base.rotate(6, resample=Image.Resampling.BICUBIC, fillcolor=(255, 255, 255)),
        base.filter(ImageFilter.GaussianBlur(1.2)),
        base.resize((base.width * 3 // 4, base.height * 3 // 4)),
        base.crop((20, 20, base.width - 20, base.height - 10)),
        ImageOps.autocontrast(base),
    ]
    paths = []
    for index in range(count):
        path = folder / f"photo{index}.jpg"
        variants[index % len(variants)].save(path, quality=92)
        paths.append(path)
    return paths


def write_prepared_dataset(folder: Path, count: int = 3, size: int = 48, seed: int = 0) -> Path:
    """A folder in the face pipeline's output format: crops/, masks/ (L), reference.png, report.json."""
    rng = np.random.default_rng(seed)
    (folder / "crops").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    for index in range(count):
        pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "crops" / f"{index:03d}.png")
        mask = Image.new("L", (size, size), 0)
        ImageDraw.Draw(mask).ellipse((size // 4, size // 6, 3 * size // 4, 5 * size // 6), fill=255)
        mask.save(folder / "masks" / f"{index:03d}.png")
    Image.open(folder / "crops" / "000.png").save(folder / "reference.png")
    (folder / "report.json").write_text(json.dumps({"kept": count}))
    return folder


class ConstantScorer:
    """A stand-in for the face scorer: the same score for every image (random models draw no face)."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = value
        self.calls = 0

    def score(self, image: Image.Image) -> float:
        self.calls += 1
        return self.value


def tiny_config(**changes) -> TrainingConfig:
    """A few seconds of training on the tiny model: 32 px, rank 4, two validation seeds of 2 steps."""
    values = dict(
        preset="Custom", steps=6, resolution=32, grad_accum=1, learning_rate=1e-3, rank=4, alpha=2,
        checkpoint_every=3, validation_seeds=(1, 2), validation_steps=2, top_k=3, trigger="pszkvq",
    )
    values.update(changes)
    return TrainingConfig(**values).validate()
