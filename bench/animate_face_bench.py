"""Animate face fidelity: how much frame 0 and the last frame still look like the portrait, SparseCtrl vs video2video.

Similarity is our face scorer's (``FaceScorer``, dlib backend: real weights from the wheels), 0 when no
face is found, against grace_hopper (matplotlib's sample photo) as the portrait. A reference row scores
the portrait itself.

- Default: the tiny random models. Their frames are noise, so the similarities are 0: the rows prove the
  plumbing (both modes render from the portrait, frames are scored), never quality.
- ``python bench/run.py animate --real``: the default profile's real weights (from the Hugging Face cache,
  offline), 16 frames at the model's size; prints both modes' numbers. Meant for a GPU machine; it says
  which roles are missing and how to fetch them when they are not there.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPT = "a photo of a woman in a navy uniform, portrait, looking at the camera, subtle smile"
NEGATIVE = "blurry, deformed, low quality, cartoon"
ROLES = ("base", "motion_adapter", "motion_adapter_v3", "domain_adapter_v3", "sparsectrl_rgb")


def _portrait() -> Image.Image:
    from matplotlib import cbook

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
        return image.convert("RGB")


def _scorer(settings, portrait: Image.Image):
    from portrait_studio.faces.backends import get_face_backend
    from portrait_studio.faces.similarity import FaceScorer
    from portrait_studio.stylize.best_of import largest_face

    backend = get_face_backend(settings.replace(face_backend="dlib"))
    found = largest_face(backend, portrait)
    if found is None:
        raise RuntimeError("no face in the bench portrait")
    rgb, face = found
    return FaceScorer(backend, backend.embed(rgb, face))


def _settings(real: bool, home: Path):
    from portrait_studio.config import settings_from_env

    if real:
        return settings_from_env(offline=True)
    return settings_from_env({}, home=home, profile="tiny", cache_gb=4.0)


def run(real: bool = False) -> list[dict]:
    from portrait_studio.animate.request import AnimateRequest
    from portrait_studio.animate.service import animate
    from portrait_studio.models.manager import ModelManager

    bench = "animate face fidelity" + (" (real weights)" if real else " (tiny random: plumbing only)")
    with tempfile.TemporaryDirectory(prefix="animate-face-") as tmp:
        # Tiny models are kept under bench/.cache/ (git-ignored) like the other benches' models.
        settings = _settings(real, Path(__file__).resolve().parent / ".cache" / "tiny-home")
        manager = ModelManager(settings)
        missing = manager.check_available(list(ROLES))
        if missing:
            return [{"bench": bench, "case": f"skipped: {problem}", "seconds": float("nan"), "ratio": float("nan"),
                     "ratio_means": "-"} for problem in missing]
        portrait = _portrait()
        scorer = _scorer(settings, portrait)
        rows = [{"bench": bench, "case": "the portrait itself (scorer reference)", "seconds": float("nan"),
                 "ratio": scorer.score(portrait), "ratio_means": "face similarity to the portrait (0-1)"}]
        size = None if real else dict(width=128, height=128)
        frames, steps = (16, 25) if real else (4, 2)
        for mode in ("sparsectrl", "video2video"):
            request = AnimateRequest(
                PROMPT, negative_prompt=NEGATIVE, init_image=portrait, portrait_mode=mode, frames=frames,
                steps=steps, seed=1, strength=0.6, **(size or {}),
            )
            start = time.perf_counter()
            result = animate(manager, request, Path(tmp) / "out", name=mode)
            seconds = time.perf_counter() - start
            clip = _frames(result.frames_zip)
            for label, frame in (("frame 0", clip[0]), (f"last frame ({len(clip) - 1})", clip[-1])):
                rows.append({"bench": bench, "case": f"{mode}: {label}", "seconds": seconds,
                             "ratio": scorer.score(frame), "ratio_means": "face similarity to the portrait (0-1)"})
        return rows


def _frames(zip_path: Path) -> list[Image.Image]:
    import io
    import zipfile

    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".png"))
        return [Image.open(io.BytesIO(archive.read(n))).convert("RGB") for n in names]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import print_table

    print_table(run(real="--real" in sys.argv))
