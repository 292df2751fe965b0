"""Talk engine cost on this CPU at the published (real) sizes with random weights.

The main number is seconds of compute per second of 25 fps video for the 256 px renderer
(keypoint transform + dense motion + SPADE decoder per frame), from two rendered frames after one
warm-up. Per-video costs (source encoding, 3DMM reconstruction, audio-to-motion for 1 s) are
reported apart. Random weights cost what real ones cost; outputs are not looked at.
"""

from __future__ import annotations

import time

import numpy as np
import torch

FRAMES = 2
SIZE = 256


def _random(name: str, module: torch.nn.Module) -> torch.nn.Module:
    from portrait_studio.talk.checkpoint import synthetic_state

    layout = {f"{name}.{k}": tuple(v.shape) for k, v in module.state_dict().items()}
    module.load_state_dict({k[len(name) + 1:]: v for k, v in synthetic_state(layout).items()})
    return module.eval()


def _timed(fn) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@torch.no_grad()
def run() -> list[dict]:
    from portrait_studio.progress import CancelToken, no_progress
    from portrait_studio.talk.checkpoint import build_mapping, build_part
    from portrait_studio.talk.config import FPS, EngineConfig
    from portrait_studio.talk.engine import TalkNets, render_frames
    from portrait_studio.talk.motion import predict_expression, predict_pose

    cfg = EngineConfig()
    nets = TalkNets(
        **{p: _random(p, build_part(p, cfg)) for p in ("kp_extractor", "generator", "audio2exp", "audio2pose",
                                                      "face_3drecon")},
        mapping=_random("mapping", build_mapping(cfg, "crop")),
        device=torch.device("cpu"), random_weights=True,
    )
    rng = np.random.default_rng(0)
    source = rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    coeffs = rng.normal(0, 0.1, (FRAMES + 1, 70)).astype(np.float32)

    def render(count: int) -> None:
        list(render_frames(nets, source, coeffs[0], coeffs[:count], no_progress, CancelToken(), batch_size=1))

    render(1)  # warm-up (allocations, one-time kernels)
    with_setup = _timed(lambda: render(FRAMES))
    image = torch.rand(1, 3, SIZE, SIZE)
    setup = _timed(lambda: (nets.kp_extractor(image), nets.generator.encode(image)))
    per_frame = max(with_setup - setup, 1e-6) / FRAMES
    recon = _timed(lambda: nets.face_3drecon(torch.rand(1, 3, 224, 224)))
    mels = torch.randn(1, FPS, 1, 80, 16)
    motion = _timed(lambda: (
        predict_expression(nets.audio2exp, mels, torch.zeros(1, 64), torch.zeros(1, FPS, 1)),
        predict_pose(nets.audio2pose, mels, torch.zeros(1, 6), 0, torch.Generator().manual_seed(0)),
    ))
    return [
        {"bench": "talk", "case": f"render {SIZE}px, per second of video", "seconds": per_frame * FPS,
         "ratio": per_frame * FPS, "ratio_means": "compute s / video s (CPU, real size, random weights)"},
        {"bench": "talk", "case": f"render {SIZE}px, per frame", "seconds": per_frame, "ratio": per_frame,
         "ratio_means": "s per frame"},
        {"bench": "talk", "case": "source setup (keypoints + feature volume)", "seconds": setup, "ratio": setup,
         "ratio_means": "s once per video"},
        {"bench": "talk", "case": "3DMM reconstruction", "seconds": recon, "ratio": recon,
         "ratio_means": "s once per video"},
        {"bench": "talk", "case": "audio-to-motion for 1 s of speech", "seconds": motion, "ratio": motion,
         "ratio_means": "compute s / audio s"},
    ]


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    for row in run():
        print(row)
