"""The training UNet's frozen layers take a faster library path on the CPU (likeness/cpu_kernels.py).

The speed is measured in bench/train_bench.py; these tests pin that each other path computes the same
function (forward and input gradient, in float64 so any wrong index shows far above round-off; the oneDNN path
also in float32 against a float64 reference), that the choices follow the measured rules, and that the
training UNet really takes them.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from portrait_studio.likeness import cpu_kernels
from portrait_studio.likeness.cpu_kernels import (
    FasterCpuConv2d,
    FasterCpuLinear,
    conv2d_as_gemm,
    gemm_is_faster,
    linear_on_onednn,
    onednn_is_faster,
    onednn_pointwise,
)
from portrait_studio.likeness.loss import micro_batch_loss
from portrait_studio.likeness.setup import Precision, lora_unet, prepare_unet_for_training, step_generator, trainable
from tests.likeness.helpers import tiny_config

CPU = torch.device("cpu")
# float64 sums of at most a few hundred products of unit-size numbers differ by ~1e-14 in order; a wrong
# row, column or kernel tap moves the result by ~1.
ROUND_OFF = 1e-10


@pytest.mark.parametrize("input_layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("weight_layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize(("kernel", "stride", "padding", "dilation"), [
    (3, (1, 1), (1, 1), (1, 1)),  # the UNet's resnet convolutions
    (3, (2, 2), (1, 1), (1, 1)),  # its downsamplers
    (1, (1, 1), (0, 0), (1, 1)),  # its 1x1 shortcuts
    (3, (1, 2), (2, 1), (2, 1)),  # uneven, so a swapped axis shows
])
def test_the_matrix_product_is_the_same_convolution(input_layout, weight_layout, kernel, stride, padding,
                                                   dilation) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 9, 7, dtype=torch.float64, generator=generator).contiguous(memory_format=input_layout)
    weight = torch.randn(6, 5, kernel, kernel, dtype=torch.float64, generator=generator)
    weight = weight.contiguous(memory_format=weight_layout)
    bias = torch.randn(6, dtype=torch.float64, generator=generator)
    for with_bias in (bias, None):
        library_input = x.clone().requires_grad_(True)
        gemm_input = x.clone().requires_grad_(True)
        expected = F.conv2d(library_input, weight, with_bias, stride, padding, dilation)
        got = conv2d_as_gemm(gemm_input, weight, with_bias, stride, padding, dilation)
        upstream = torch.randn(expected.shape, dtype=torch.float64, generator=generator)
        expected.backward(upstream)
        got.backward(upstream)
        assert got.shape == expected.shape
        assert got.is_contiguous(memory_format=input_layout)  # the next layer sees the layout it was given
        torch.testing.assert_close(got, expected, rtol=0, atol=ROUND_OFF)
        torch.testing.assert_close(gemm_input.grad, library_input.grad, rtol=0, atol=ROUND_OFF)


WIDE = 1280 * 1280 * 9  # SD1.5's 1280->1280 3x3 convolution


@pytest.mark.parametrize(("case", "expected"), [
    ({}, True),  # 8x8 latent, batch 1: 2x faster measured
    ({"output_positions": 16}, True),  # 4x4
    ({"weight_elements": 2560 * 1280 * 9}, True),  # the up-blocks' concatenated inputs
    ({"output_positions": 256}, False),  # 16x16: oneDNN ahead
    ({"output_positions": 128}, False),  # batch 2 at 8x8 shares each re-layout twice
    ({"weight_elements": 1280 * 640 * 9}, False),  # half the weight: oneDNN ahead
    ({"device_type": "cuda"}, False),  # cuDNN's autotuner chooses there
    ({"device_type": "mps"}, False),
    ({"dtype": torch.bfloat16}, False),  # not measured: library path
    ({"dtype": torch.float64}, False),
    ({"groups": 2}, False),
    ({"zero_padding": False}, False),
])
def test_the_rule_takes_the_matrix_product_only_where_it_was_measured_faster(case, expected) -> None:
    figures = {"device_type": "cpu", "dtype": torch.float32, "groups": 1, "zero_padding": True,
               "weight_elements": WIDE, "output_positions": 64}
    assert gemm_is_faster(**{**figures, **case}) is expected


def _loss_and_lora_grads(unet: torch.nn.Module, data, config) -> tuple[torch.Tensor, list[torch.Tensor]]:
    for parameter in trainable(unet):
        parameter.grad = None
    loss = micro_batch_loss(unet, None, data, _scheduler(), step_generator(0, 3), config, CPU,
                            Precision(torch.float64, None, False))
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in trainable(unet)]


def _scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)


def test_the_training_unet_takes_the_faster_paths_and_gets_the_same_step(tiny_manager, monkeypatch) -> None:
    from portrait_studio.likeness.dataset import LatentDataset

    path = tiny_manager.sd_info().path
    config = tiny_config()
    unet = lora_unet(path, config, CPU, Precision(torch.float32, None, False))  # prepared for training
    convolutions = [m for m in unet.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in unet.modules() if isinstance(m, torch.nn.Linear)]
    assert convolutions and all(type(m) is FasterCpuConv2d for m in convolutions)
    assert linears and all(type(m) is FasterCpuLinear for m in linears)

    unet.double()  # float64: the two paths then agree to round-off, and a wrong one shows
    latent_size = unet.config.sample_size
    generator = torch.Generator().manual_seed(1)
    data = LatentDataset(
        mean=torch.randn(2, 4, latent_size, latent_size, dtype=torch.float64, generator=generator),
        std=torch.full((2, 4, latent_size, latent_size), 0.1, dtype=torch.float64),
        text_embeddings=torch.randn(1, 77, unet.config.cross_attention_dim, dtype=torch.float64, generator=generator),
        input_ids=torch.zeros(1, 77, dtype=torch.long), weights=None, scaling_factor=0.18215, n_images=2,
    )
    calls = {"conv2d_as_gemm": 0, "onednn_pointwise": 0, "linear_on_onednn": 0}
    for name in calls:
        real = getattr(cpu_kernels, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(cpu_kernels, name, counted)
    monkeypatch.setattr(cpu_kernels, "gemm_is_faster", lambda **figures: False)
    monkeypatch.setattr(cpu_kernels, "onednn_is_faster", lambda **figures: False)
    library_loss, library_grads = _loss_and_lora_grads(unet, data, config)
    assert not any(calls.values())
    # Every layer on the other paths this time: 3x3 convolutions as products, 1x1s and linears via oneDNN's route.
    monkeypatch.setattr(cpu_kernels, "gemm_is_faster", lambda **figures: True)
    monkeypatch.setattr(cpu_kernels, "onednn_is_faster", lambda **figures: True)
    other_loss, other_grads = _loss_and_lora_grads(unet, data, config)
    one_by_one = sum(1 for m in convolutions if m.kernel_size == (1, 1))
    assert calls["conv2d_as_gemm"] >= len(convolutions) - one_by_one
    assert calls["linear_on_onednn"] >= len(linears)
    assert calls["onednn_pointwise"] >= one_by_one + calls["linear_on_onednn"]  # each linear goes through it once
    torch.testing.assert_close(other_loss, library_loss, rtol=1e-9, atol=0)
    for got, expected in zip(other_grads, library_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("shape", [(7, 40), (2, 9, 40), (1, 1, 40)])
def test_the_linear_map_on_onednn_is_the_same_linear_map(shape) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64, generator=generator)
    weight = torch.randn(24, 40, dtype=torch.float64, generator=generator)
    bias = torch.randn(24, dtype=torch.float64, generator=generator)
    library_input, other_input = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    expected = F.linear(library_input, weight, bias)
    got = linear_on_onednn(other_input, weight, bias)
    upstream = torch.randn(expected.shape, dtype=torch.float64, generator=generator)
    expected.backward(upstream)
    got.backward(upstream)
    torch.testing.assert_close(got, expected, rtol=0, atol=ROUND_OFF)
    torch.testing.assert_close(other_input.grad, library_input.grad, rtol=0, atol=ROUND_OFF)


def test_onednn_keeps_float32_precision() -> None:
    """oneDNN can be set to compute float32 in bf16; this path must not: compared with a float64 reference at a
    width the rule picks, float32's error stays ~1e-6 of the values, bf16's would be ~1e-2."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1024, 320, generator=generator)
    weight = torch.randn(320, 320, generator=generator) / 320**0.5
    reference = F.linear(x.double(), weight.double())
    error = (linear_on_onednn(x, weight, None).double() - reference).abs().max()
    assert error <= 1e-4 * reference.abs().max(), float(error)
    image = x.reshape(1, 32, 32, 320).permute(0, 3, 1, 2)  # channels-last, as in the UNet
    out = onednn_pointwise(image, weight.reshape(320, 320, 1, 1), None).permute(0, 2, 3, 1).reshape(1024, 320)
    assert (out.double() - reference).abs().max() <= 1e-4 * reference.abs().max()


@pytest.mark.parametrize(("case", "expected"), [
    ({}, True),  # 1024 tokens x 320: about twice as fast measured
    ({"tokens": 4096, "in_features": 1280}, True),
    ({"tokens": 64, "in_features": 1280, "out_features": 1280}, False),  # few tokens: MKL ahead
    ({"tokens": 77}, False),  # cross-attention over the prompt's tokens
    ({"out_features": 32}, False),  # a LoRA matrix
    ({"device_type": "cuda"}, False),
    ({"dtype": torch.bfloat16}, False),
    ({"dtype": torch.float64}, False),  # oneDNN has no float64 kernels
])
def test_the_rule_sends_linear_maps_to_onednn_only_where_it_was_measured_faster(case, expected) -> None:
    figures = {"device_type": "cpu", "dtype": torch.float32, "tokens": 1024, "in_features": 320, "out_features": 320}
    assert onednn_is_faster(**{**figures, **case}) is expected


def test_preparing_twice_changes_nothing_more(tiny_manager) -> None:
    unet = lora_unet(tiny_manager.sd_info().path, tiny_config(), CPU, Precision(torch.float32, None, False))
    before = [type(m) for m in unet.modules()]
    prepare_unet_for_training(unet, CPU)
    assert [type(m) for m in unet.modules()] == before
