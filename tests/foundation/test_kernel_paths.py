"""The premise that lets float64 goldens skip the "no-onednn" kernel path (tests/kernel_paths.py).

Float64 goldens (AnimeGANv2, SadTalker) run on the default and one-thread paths only, because oneDNN has no
float64 kernels: switching it off changes nothing for them. This module checks that premise on the installed
PyTorch, for every layer type those networks use, and in the way that matters: no oneDNN operation runs in
float64, and the outputs with oneDNN off are bit for bit the default ones. The float32 control shows the
profiler does see oneDNN when it is used, so the float64 check cannot pass by seeing nothing.
"""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from tests.kernel_paths import kernel_path


def _layers_of_the_float64_goldens(dtype: torch.dtype) -> list[tuple[torch.nn.Module, tuple[int, ...]]]:
    """One of each layer type in the float64 golden networks, with an input shape for it."""
    torch.manual_seed(0)
    layers = [
        (torch.nn.Conv1d(8, 16, 3, padding=1), (2, 8, 20)),
        (torch.nn.Conv2d(8, 16, 3, padding=1), (1, 8, 24, 24)),
        (torch.nn.Conv2d(8, 8, 3, padding=1, groups=8), (1, 8, 24, 24)),  # depthwise
        (torch.nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1), (1, 8, 12, 12)),
        (torch.nn.Conv3d(4, 8, (3, 3, 3), padding=1), (1, 4, 6, 12, 12)),
        (torch.nn.Linear(24, 32), (2, 8, 24)),
        (torch.nn.BatchNorm2d(8).eval(), (1, 8, 12, 12)),
        (torch.nn.BatchNorm3d(4).eval(), (1, 4, 6, 12, 12)),
        (torch.nn.GroupNorm(1, 8), (1, 8, 12, 12)),
        (torch.nn.InstanceNorm2d(8, affine=True), (1, 8, 12, 12)),
        (torch.nn.MaxPool2d(2), (1, 8, 12, 12)),
        (torch.nn.AvgPool3d((1, 2, 2)), (1, 4, 6, 12, 12)),
        (torch.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), (1, 8, 12, 12)),
        (torch.nn.Upsample(scale_factor=2, mode="trilinear"), (1, 4, 3, 6, 6)),
    ]
    return [(layer.to(dtype), shape) for layer, shape in layers]


def _run(dtype: torch.dtype) -> list[torch.Tensor]:
    outputs = []
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer, shape in _layers_of_the_float64_goldens(dtype):
            outputs.append(layer(torch.randn(shape, generator=generator, dtype=dtype)))
        grid = torch.rand((1, 4, 6, 6, 3), generator=generator, dtype=dtype) * 2 - 1
        volume = torch.randn((1, 2, 4, 6, 6), generator=generator, dtype=dtype)
        outputs.append(torch.nn.functional.grid_sample(volume, grid, align_corners=False))
    return outputs


def _onednn_ops(dtype: torch.dtype) -> set[str]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        _run(dtype)
    return {e.name for e in prof.events() if "mkldnn" in e.name.lower() or "onednn" in e.name.lower()}


def test_the_profiler_sees_onednn_in_float32() -> None:
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this PyTorch build has no oneDNN: the no-onednn path is the default one for every dtype")
    assert _onednn_ops(torch.float32), "float32 convolutions normally run on oneDNN; the check below would be blind"


def test_float64_runs_no_onednn_kernel_so_the_no_onednn_path_is_the_default_one() -> None:
    assert _onednn_ops(torch.float64) == set()
    with kernel_path("default"):
        default = _run(torch.float64)
    with kernel_path("no-onednn"):
        without_onednn = _run(torch.float64)
    assert all(torch.equal(a, b) for a, b in zip(default, without_onednn, strict=True))
