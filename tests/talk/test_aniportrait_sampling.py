"""The AniPortrait denoising loop: window schedule as the reference makes it, averaging, guidance, progress, cancel."""

from __future__ import annotations

import pytest
import torch

from portrait_studio.errors import CancelledError
from portrait_studio.progress import CancelToken
from portrait_studio.talk.aniportrait.sampling import context_windows, denoise, published_scheduler

# Output of the reference ``uniform(step=0, num_steps=25, frames, 16, context_stride=1, context_overlap=4)``
# (AniPortrait src/pipelines/context.py, as pipeline_pose2vid_long calls it), written as window start frames.
REFERENCE_STARTS = {8: [0], 16: [0], 17: [0, 12], 28: [0, 12, 24], 29: [0, 12, 24], 40: [0, 12, 24, 36]}


@pytest.mark.parametrize("frames", sorted(REFERENCE_STARTS))
def test_windows_follow_the_reference_schedule(frames: int) -> None:
    windows = context_windows(frames)
    if frames <= 16:
        assert windows == [list(range(frames))]
        return
    assert [w[0] for w in windows] == REFERENCE_STARTS[frames]
    assert all(w == [(w[0] + k) % frames for k in range(16)] for w in windows)  # closed loop: wraps round
    assert set().union(*windows) == set(range(frames))


class _EchoScheduler:
    """A stand-in whose step returns the model prediction, so the test sees exactly what the loop produced."""

    init_noise_sigma = 1.0

    def set_timesteps(self, steps: int, device: torch.device | None = None) -> None:
        self.timesteps = torch.arange(steps, 0, -1)

    def scale_model_input(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x

    def step(self, prediction: torch.Tensor, t: torch.Tensor, latents: torch.Tensor, generator=None):  # noqa: ANN001, ANN201
        return type("Out", (), {"prev_sample": prediction})()


def test_overlapping_windows_are_averaged_and_guidance_combines_halves() -> None:
    latents = torch.zeros(1, 1, 20, 1, 1)
    calls: list[list[int]] = []

    def predict(x: torch.Tensor, t: torch.Tensor, frames: list[int]) -> torch.Tensor:
        calls.append(frames)
        window = float(len(calls))  # 1 for the first window, 2 for the second
        return torch.cat([torch.full_like(x[:1], 0.0), torch.full_like(x[:1], window)])  # [uncond, cond]

    out = denoise(latents, _EchoScheduler(), 1, predict, guidance_scale=3.0)
    # windows: 0-15 and 12-19 + 0-7 (wrapping); frames 0-7 and 12-15 are seen by both
    expected = torch.tensor([1.5] * 8 + [1.0] * 4 + [1.5] * 4 + [2.0] * 4) * 3.0
    torch.testing.assert_close(out.flatten(), expected)


def test_progress_per_window_and_cancel_within_one_step() -> None:
    reports: list[tuple[float, str]] = []
    cancel = CancelToken()

    def predict(x: torch.Tensor, t: torch.Tensor, frames: list[int]) -> torch.Tensor:
        if len(reports) == 4:  # pressed during step 3, window 1 -> stops before window 2
            cancel.cancel()
        return torch.zeros_like(x)

    def progress(fraction: float, message: str = "") -> None:
        reports.append((fraction, message))

    with pytest.raises(CancelledError):
        denoise(torch.zeros(1, 1, 20, 1, 1), _EchoScheduler(), 3, predict, 1.0, progress, cancel)
    assert [m for _, m in reports] == [
        "denoising step 1/3, window 1/2", "denoising step 1/3, window 2/2",
        "denoising step 2/3, window 1/2", "denoising step 2/3, window 2/2", "denoising step 3/3, window 1/2"]
    assert [f for f, _ in reports] == pytest.approx([1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6])


def test_published_scheduler_is_trailing_zero_snr_v_prediction() -> None:
    scheduler = published_scheduler()
    scheduler.set_timesteps(25)
    assert scheduler.config.prediction_type == "v_prediction"
    assert int(scheduler.timesteps[0]) == 999  # trailing spacing starts at the last training step
    assert float(scheduler.alphas_cumprod[-1]) == pytest.approx(0.0, abs=1e-6)  # zero terminal SNR
    latents = denoise(torch.randn(1, 4, 3, 2, 2, generator=torch.Generator().manual_seed(0)), scheduler, 2,
                      lambda x, t, f: torch.zeros_like(x), guidance_scale=1.0)
    assert torch.isfinite(latents).all()
