"""Face preparation on 20 photos of 12 megapixels, CPU, dlib backend: total time and the decoding share.

Target: under 10 s on the 2-core CI machine. Photos are grace_hopper (matplotlib's sample) enlarged into
4000 x 3000 frames with sensor-like noise so the JPEGs cost what phone photos cost to decode.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = 20
SIZE = (4000, 3000)
TARGET_SECONDS = 10.0


def _make_photos(folder: Path) -> list[Path]:
    from matplotlib import cbook

    face = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(PHOTOS):
        scale = 2.2 + 0.15 * (i % 5)
        portrait = face.resize((round(face.width * scale), round(face.height * scale)), Image.Resampling.BILINEAR)
        if i % 2:
            portrait = portrait.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        portrait = portrait.rotate((i % 7) - 3, resample=Image.Resampling.BILINEAR, expand=False)
        canvas = Image.new("RGB", SIZE, (120 + i, 130, 140))
        canvas.paste(portrait, (300 + 60 * i, 100 + 20 * (i % 4)))
        pixels = np.asarray(canvas, dtype=np.int16) + rng.integers(-6, 7, size=(SIZE[1], SIZE[0], 1), dtype=np.int16)
        path = folder / f"photo_{i:02d}.jpg"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def run() -> list[dict]:
    from portrait_studio.config import Settings
    from portrait_studio.faces import analyze
    from portrait_studio.faces.backends import get_face_backend
    from portrait_studio.faces.pipeline import prepare_faces

    with tempfile.TemporaryDirectory(prefix="faces-bench-") as tmp:
        root = Path(tmp)
        paths = _make_photos(root)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        settings = Settings(home=root / "home", offline=True, face_backend="dlib")
        get_face_backend(settings)  # model loading is a one-off per process, not per request
        decode_seconds = 0.0  # summed over threads: decoding overlaps analysis on the second core
        original_decode = analyze._decode

        def timed_decode(*args, **kwargs):
            nonlocal decode_seconds
            start = time.perf_counter()
            try:
                return original_decode(*args, **kwargs)
            finally:
                decode_seconds += time.perf_counter() - start

        analyze._decode = timed_decode
        try:
            start = time.perf_counter()
            result = prepare_faces(paths, root / "out", settings, top_k=15, restore=False)
            total = time.perf_counter() - start
        finally:
            analyze._decode = original_decode
    case = f"{PHOTOS} JPEGs {SIZE[0]}x{SIZE[1]} ({megabytes:.0f} MB), dlib, {len(result.kept)} kept"
    return [
        {"bench": "faces prepare", "case": case, "seconds": total, "ratio": total / TARGET_SECONDS,
         "ratio_means": f"x the {TARGET_SECONDS:g} s target (<= 1 passes)"},
        {"bench": "faces prepare", "case": "decoding (JPEG draft mode)", "seconds": decode_seconds,
         "ratio": decode_seconds / total, "ratio_means": "share of the total"},
    ]

if __name__ == "__main__":
    for row in run():
        print(row)
