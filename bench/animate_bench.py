"""Animate bench: resident memory with Stylize and Animate both warm from one cache, and face fidelity.

Models have Stable Diffusion 1.5's real shapes with random weights (the SD1.5-sized folder of
sd_bench.py plus MotionAdapters with AnimateDiff v1.5.2's and v1.5.3's shapes and a SparseCtrl RGB
encoder, all under bench/.cache/), held in float16 like on a GPU and loaded through the same
ModelManager and animate.models code the app uses. Memory is the bytes of distinct tensor storages,
so shared tensors count once: the motion UNets hold the base UNet's spatial weights, so Stylize +
Animate should cost Stylize + the motion modules (target <= 1.55x Stylize alone).

The face-fidelity rows are in animate_face_bench.py (``python bench/run.py animate --real`` for real weights).

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


def build_motion_adapter_sized(folder: Path, v3: bool = False) -> Path:
    """A random MotionAdapter with v1.5.2's shapes (diffusers defaults) or v1.5.3's (no mid-block module)."""
    if (folder / "config.json").is_file():
        return folder
    from diffusers import MotionAdapter

    torch.manual_seed(0)
    kwargs = dict(use_motion_mid_block=False, motion_max_seq_length=32) if v3 else {}
    MotionAdapter(**kwargs).to(torch.float16).save_pretrained(str(folder), safe_serialization=True)
    return folder


def build_sparsectrl_sized(folder: Path) -> Path:
    """A random SparseCtrl RGB encoder with the published config's shapes (diffusers defaults), float16."""
    if (folder / "config.json").is_file():
        return folder
    from diffusers import SparseControlNetModel

    torch.manual_seed(0)
    SparseControlNetModel().to(torch.float16).save_pretrained(str(folder), safe_serialization=True)
    return folder


def _manager(base: Path, adapter: Path, adapter_v3: Path, sparsectrl: Path) -> ModelManager:
    settings = settings_from_env(
        {}, home=CACHE / "home", offline=True, cache_gb=40.0, dtype="float16",
        model_overrides={"base": str(base), "motion_adapter": str(adapter), "motion_adapter_v3": str(adapter_v3),
                         "sparsectrl_rgb": str(sparsectrl)},
    )
    return ModelManager(settings)


def _stylize_modules(manager: ModelManager) -> list[torch.nn.Module]:
    parts = manager.sd_components()
    return [parts["unet"], parts["vae"], parts["text_encoder"]]


def _pipe_modules(pipe) -> list[torch.nn.Module]:
    names = ("unet", "vae", "text_encoder", "motion_adapter", "controlnet")
    return [m for m in (getattr(pipe, n, None) for n in names) if isinstance(m, torch.nn.Module)]


def run() -> list[dict]:
    from diffusers import AnimateDiffPipeline

    base = build_sd15_sized(CACHE / "sd15-sized-random")
    adapter = build_motion_adapter_sized(CACHE / "motion-adapter-v152-sized-random")
    adapter_v3 = build_motion_adapter_sized(CACHE / "motion-adapter-v153-sized-random", v3=True)
    sparsectrl = build_sparsectrl_sized(CACHE / "sparsectrl-rgb-sized-random")
    rows: list[dict] = []

    def row(case: str, ratio: float, means: str, seconds: float = float("nan")) -> None:
        rows.append({"bench": "stylize + animate memory", "case": case, "seconds": seconds, "ratio": ratio,
                     "ratio_means": means})

    manager = _manager(base, adapter, adapter_v3, sparsectrl)
    stylize = unique_bytes(*_stylize_modules(manager))
    row(f"stylize alone ({stylize / GB:.2f} GB fp16)", 1.0, "x stylize alone")

    resident: list[torch.nn.Module] = list(_stylize_modules(manager))
    seconds: dict[str, float] = {}
    for label, role in (("v1-5-2", models.MOTION_ADAPTER_ROLE), ("v1-5-3", models.V3_ROLE)):
        start = time.perf_counter()
        with models.motion_pipeline(manager, adapter_role=role) as pipe:
            seconds[label] = time.perf_counter() - start
            assert pipe.vae is manager.sd_components()["vae"]
            alone = unique_bytes(*_stylize_modules(manager), pipe.unet)
            motion_only = alone - stylize
            resident.append(pipe.unet)
        row(f"+ {label} motion UNet, spatial weights shared ({alone / GB:.2f} GB; motion modules "
            f"{motion_only / GB:.2f} GB)", alone / stylize, "x stylize alone (target <= 1.55)", seconds[label])
    both = unique_bytes(*resident)
    row(f"+ both motion UNets ({both / GB:.2f} GB)", both / stylize, "x stylize alone")
    start = time.perf_counter()
    with models.motion_pipeline(manager, "sparsectrl", adapter_role=models.V3_ROLE) as pipe:
        portrait_mode = unique_bytes(*_stylize_modules(manager), *_pipe_modules(pipe))
        with_everything = unique_bytes(*resident, pipe.controlnet)
    row(f"+ v1-5-3 + SparseCtrl RGB, portrait mode ({portrait_mode / GB:.2f} GB)", portrait_mode / stylize,
        "x stylize alone", time.perf_counter() - start)
    row(f"+ both motion UNets + SparseCtrl RGB ({with_everything / GB:.2f} GB)", with_everything / stylize,
        "x stylize alone")
    start = time.perf_counter()
    with models.motion_pipeline(manager, adapter_role=models.V3_ROLE):
        warm_seconds = time.perf_counter() - start

    del manager, resident, pipe
    gc.collect()
    # What sharing saves: diffusers' own from_pipe copies the spatial weights (the old 2.28x).
    from_pipe_manager = _manager(base, adapter, adapter_v3, sparsectrl)
    with from_pipe_manager.sd_pipeline("txt2img") as sd_pipe:
        from_pipe = AnimateDiffPipeline.from_pipe(
            sd_pipe, motion_adapter=models.load_motion_adapter(from_pipe_manager), dtype=torch.float16
        )
        via_from_pipe = unique_bytes(*_stylize_modules(from_pipe_manager), *_pipe_modules(from_pipe))
        del from_pipe
    del from_pipe_manager
    gc.collect()
    row(f"v1-5-2 via from_pipe (UNet copy + adapter kept) ({via_from_pipe / GB:.2f} GB)", via_from_pipe / stylize,
        "x stylize alone")
    rows.append({"bench": "animate warm-up", "case": "v1-5-3 motion pipeline, stylize warm (builds motion UNet)",
                 "seconds": seconds["v1-5-3"], "ratio": 1.0, "ratio_means": "reference"})
    rows.append({"bench": "animate warm-up", "case": "v1-5-3 motion pipeline, second request (cache hit)",
                 "seconds": warm_seconds, "ratio": warm_seconds / seconds["v1-5-3"], "ratio_means": "x first request"})
    return rows


if __name__ == "__main__":
    from run import print_table

    print_table(run())
