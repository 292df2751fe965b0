"""Animate bench: resident memory with Stylize and Animate both warm from one cache vs loaded separately.

Models have Stable Diffusion 1.5's real shapes with random weights (the SD1.5-sized folder of
sd_bench.py plus a MotionAdapter with AnimateDiff v1.5.2's default shapes, both under bench/.cache/),
held in float16 like on a GPU and loaded through the same ModelManager and animate.models code the app
uses. Memory is the bytes of distinct tensor storages, so shared modules count once.

    python bench/animate_bench.py
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sd_bench import CACHE, build_sd15_sized, unique_bytes  # noqa: E402

from portrait_studio.animate import models  # noqa: E402
from portrait_studio.config import settings_from_env  # noqa: E402
from portrait_studio.models.manager import ModelManager  # noqa: E402

GB = 1 << 30


def build_motion_adapter_sized(folder: Path) -> Path:
    """A random MotionAdapter with v1.5.2's shapes (diffusers defaults), saved in float16."""
    if (folder / "config.json").is_file():
        return folder
    from diffusers import MotionAdapter

    torch.manual_seed(0)
    MotionAdapter().to(torch.float16).save_pretrained(str(folder), safe_serialization=True)
    return folder


def _manager(base: Path, adapter: Path) -> ModelManager:
    settings = settings_from_env(
        {}, home=CACHE / "home", offline=True, cache_gb=40.0, dtype="float16",
        model_overrides={"base": str(base), "motion_adapter": str(adapter)},
    )
    return ModelManager(settings)


def _stylize_modules(manager: ModelManager) -> list[torch.nn.Module]:
    parts = manager.sd_components()
    return [parts["unet"], parts["vae"], parts["text_encoder"]]


def _pipe_modules(pipe) -> list[torch.nn.Module]:
    names = ("unet", "vae", "text_encoder", "motion_adapter")
    return [m for m in (getattr(pipe, n, None) for n in names) if isinstance(m, torch.nn.Module)]


def run() -> list[dict]:
    from diffusers import AnimateDiffPipeline

    base = build_sd15_sized(CACHE / "sd15-sized-random")
    adapter = build_motion_adapter_sized(CACHE / "motion-adapter-v152-sized-random")
    rows: list[dict] = []

    def row(case: str, ratio: float, means: str, seconds: float = float("nan")) -> None:
        rows.append({"bench": "stylize + animate memory", "case": case, "seconds": seconds, "ratio": ratio,
                     "ratio_means": means})

    shared_manager = _manager(base, adapter)
    stylize = unique_bytes(*_stylize_modules(shared_manager))
    row(f"stylize alone ({stylize / GB:.2f} GB fp16)", 1.0, "x stylize alone")

    start = time.perf_counter()
    with models.motion_pipeline(shared_manager) as pipe:
        build_seconds = time.perf_counter() - start
        assert pipe.vae is shared_manager.sd_components()["vae"]
        ours = unique_bytes(*_stylize_modules(shared_manager), *_pipe_modules(pipe))
    start = time.perf_counter()
    with models.motion_pipeline(shared_manager):
        warm_seconds = time.perf_counter() - start
    row(f"one cache: + motion UNet entry ({ours / GB:.2f} GB)", ours / stylize, "x stylize alone")

    # A manager of its own: from_pipe casts the components it shares (its dtype defaults to float32).
    from_pipe_manager = _manager(base, adapter)
    with from_pipe_manager.sd_pipeline("txt2img") as sd_pipe:
        from_pipe = AnimateDiffPipeline.from_pipe(
            sd_pipe, motion_adapter=models.load_motion_adapter(from_pipe_manager), dtype=torch.float16
        )
        via_from_pipe = unique_bytes(*_stylize_modules(from_pipe_manager), *_pipe_modules(from_pipe))
        del from_pipe
    del from_pipe_manager
    gc.collect()
    row(f"from_pipe (UNet copy + adapter kept) ({via_from_pipe / GB:.2f} GB)", via_from_pipe / stylize,
        "x stylize alone")

    separate_manager = _manager(base, adapter)
    with models.motion_pipeline(separate_manager) as other:
        separate = stylize + unique_bytes(*_pipe_modules(other))
    del separate_manager
    gc.collect()
    row(f"loaded separately ({separate / GB:.2f} GB)", separate / stylize, "x stylize alone")
    row("one cache vs separate", ours / separate, "memory ratio (lower is better)")
    rows.append({"bench": "animate warm-up", "case": "motion pipeline, stylize warm (builds motion UNet)",
                 "seconds": build_seconds, "ratio": 1.0, "ratio_means": "reference"})
    rows.append({"bench": "animate warm-up", "case": "motion pipeline, second request (cache hit)",
                 "seconds": warm_seconds, "ratio": warm_seconds / build_seconds, "ratio_means": "x first request"})
    return rows


if __name__ == "__main__":
    from run import print_table

    print_table(run())
