"""The denoising loop over long clips: overlapping 16-frame windows, guidance, progress and cancel per window.

AniPortrait samples all frames' latents at once, but the motion modules see at most 16 frames (their
training length). Each step runs the UNet on windows of 16 frames that overlap by 4 (the reference's
"uniform" context schedule at stride 1, closed loop: the last window wraps round to the first frames) and
averages the predictions of frames that several windows cover. With classifier-free guidance the batch is
[unconditional, conditional] and the averaged halves are combined as ``u + scale * (c - u)``.

One deliberate difference: the reference averages the window predictions only when guidance is on (without
it, overlapping frames get the *sum*); we always average.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from portrait_studio.progress import CancelToken, ProgressFn, no_progress

WINDOW = 16
OVERLAP = 4
# configs/inference/inference_v2.yaml: DDIM, v-prediction with zero terminal SNR and trailing timesteps.
SCHEDULER_CONFIG = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="linear", clip_sample=False,
                        steps_offset=1, prediction_type="v_prediction", rescale_betas_zero_snr=True,
                        timestep_spacing="trailing")

Predictor = Callable[[torch.Tensor, torch.Tensor, list[int]], torch.Tensor]


def published_scheduler() -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SCHEDULER_CONFIG)


def context_windows(frames: int, size: int = WINDOW, overlap: int = OVERLAP) -> list[list[int]]:
    """Frame indices of each window; one window when the clip fits, else starts every ``size - overlap``."""
    if frames <= size:
        return [list(range(frames))]
    return [[(start + k) % frames for k in range(size)] for start in range(0, frames, size - overlap)]


def denoise(
    latents: torch.Tensor,
    scheduler: Any,
    steps: int,
    predict: Predictor,
    guidance_scale: float,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Run ``steps`` scheduler steps on (b, c, f, h, w) latents; ``predict(x, t, frames)`` is the UNet on one window.

    ``x`` is the window's scaled latents, doubled along the batch when guidance is on. Progress is reported
    after every window (``step i/n, window j/m``); a cancel takes effect before the next window.
    """
    cancel = cancel or CancelToken()
    guided = guidance_scale > 1.0
    scheduler.set_timesteps(steps, device=latents.device)
    windows = context_windows(latents.shape[2])
    total = len(scheduler.timesteps) * len(windows)
    latents = latents * scheduler.init_noise_sigma
    for i, t in enumerate(scheduler.timesteps):
        rows = latents.shape[0] * (2 if guided else 1)
        summed = latents.new_zeros((rows, *latents.shape[1:]))
        counts = latents.new_zeros((1, 1, latents.shape[2], 1, 1))
        for j, frames in enumerate(windows):
            cancel.raise_if_cancelled()
            window = latents[:, :, frames]
            window = torch.cat([window, window]) if guided else window
            summed[:, :, frames] += predict(scheduler.scale_model_input(window, t), t, frames)
            counts[:, :, frames] += 1
            done = i * len(windows) + j + 1
            progress(done / total, f"denoising step {i + 1}/{len(scheduler.timesteps)}, window {j + 1}/{len(windows)}")
        prediction = summed / counts
        if guided:
            unconditional, conditional = prediction.chunk(2)
            prediction = unconditional + guidance_scale * (conditional - unconditional)
        latents = scheduler.step(prediction, t, latents, generator=generator).prev_sample
    return latents
