"""Long animations: peak memory of a 64-frame clip vs a 16-frame one (FreeNoise + split inference).

Each clip renders in a fresh process through the app's own ``animate`` service on random models of real
size (SD1.5-shaped UNet/VAE/text encoder and a v1.5.2-shaped motion adapter, from animate_bench.py), in
float32 on the CPU (half precision on this CPU is ~70x slower). Memory is the process's peak resident set
during the render only: the kernel's high-water mark is reset (``/proc/self/clear_refs``) once the models
are loaded and warm, so the one-off peak of building the motion UNet does not hide the render's.
64 px and one denoising step keep it short on two shared cores; guidance is on, as by default, so the
spatial layers would see 2 x frames images at once without split inference. Target: 64 / 16 <= 1.3.

    python bench/long_animate_bench.py            # LONG_ANIMATE_NO_SPLIT=1 adds 64 frames without splitting
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

GB = 1 << 30
SIZE = 64
TARGET = 1.3


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(frames: int, split: bool) -> dict:
    import ctypes
    import tempfile

    import torch
    from animate_bench import build_motion_adapter_sized
    from sd_bench import CACHE, build_sd15_sized

    from portrait_studio.animate import models
    from portrait_studio.animate.request import AnimateRequest
    from portrait_studio.animate.service import animate
    from portrait_studio.config import settings_from_env
    from portrait_studio.models.manager import ModelManager

    torch.set_num_threads(2)
    base = build_sd15_sized(CACHE / "sd15-sized-random")
    adapter = build_motion_adapter_sized(CACHE / "motion-adapter-v152-sized-random")
    settings = settings_from_env({}, home=CACHE / "home", offline=True, cache_gb=40.0, dtype="float32",
                                 model_overrides={"base": str(base), "motion_adapter": str(adapter)})
    manager = ModelManager(settings)
    with models.motion_pipeline(manager):  # load and build everything once, outside the measurement
        pass
    if not split:
        models.split_inference = _no_split  # type: ignore[assignment]
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    loaded = _rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    request = AnimateRequest("a portrait", frames=frames, steps=1, width=SIZE, height=SIZE, seed=1)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        animate(manager, request, Path(out), name="long")
    seconds = time.perf_counter() - started
    peak = _rss_kib("VmHWM")
    return {"frames": frames, "split": split, "loaded_gb": loaded / (1 << 20), "peak_gb": peak / (1 << 20),
            "seconds": seconds}


def _no_split(pipe, frames):  # the context manager without its effect, for the comparison row
    from contextlib import nullcontext

    return nullcontext(False)


def _measure(frames: int, split: bool = True) -> dict:
    run = subprocess.run([sys.executable, __file__, "--child", str(frames), "split" if split else "no-split"],
                         capture_output=True, text=True, timeout=3600)
    if run.returncode != 0:
        raise RuntimeError(f"{frames}-frame render failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def run() -> list[dict]:
    short = _measure(16)
    long = _measure(64)
    rows = []

    def row(case: str, result: dict, ratio: float, means: str) -> None:
        rows.append({"bench": "long animation memory", "case": case, "seconds": result["seconds"], "ratio": ratio,
                     "ratio_means": means})

    row(f"16 frames, {SIZE}px: peak RSS {short['peak_gb']:.2f} GB (models {short['loaded_gb']:.2f} GB)", short,
        1.0, "reference")
    ratio = long["peak_gb"] / short["peak_gb"]
    row(f"64 frames, split inference: peak RSS {long['peak_gb']:.2f} GB", long, ratio,
        f"x 16 frames (target <= {TARGET}); {'PASS' if ratio <= TARGET else 'FAIL'}")
    working_short = short["peak_gb"] - short["loaded_gb"]
    working_long = long["peak_gb"] - long["loaded_gb"]
    row(f"  working memory above the models: {working_short:.2f} -> {working_long:.2f} GB", long,
        working_long / max(working_short, 1e-9), "x 16 frames (4x the frames)")
    if os.environ.get("LONG_ANIMATE_NO_SPLIT") == "1":
        unsplit = _measure(64, split=False)
        row(f"64 frames, no split inference: peak RSS {unsplit['peak_gb']:.2f} GB", unsplit,
            unsplit["peak_gb"] / short["peak_gb"], "x 16 frames")
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(child(int(sys.argv[2]), sys.argv[3] == "split")))
    else:
        from run import print_table

        print_table(run())
