"""Faster CPU kernels for the training UNet's frozen layers: same arithmetic, a better library path per shape.

PyTorch picks a float32 CPU kernel by heuristics that cost Stable Diffusion's training step about half its time
on an AMD CPU (Intel's MKL runs its AVX2 code there; oneDNN runs AVX-512). Two choices, each a pure function of
shapes (so a resumed run chooses as the first did), measured on this project's CPU (forward and input gradient,
one thread; two threads give the same picture):

1. Convolutions with wide weights at few output positions: oneDNN lays the weight out anew on every call, which
   for SD's 1280-channel layers at 8x8 and 4x4 latents costs more than the arithmetic. ``unfold`` + one matrix
   product reads the weight as it lies:

    weight, output          oneDNN   matrix product
    2560->1280 3x3, 4x4     233 ms    52 ms
    1280->1280 3x3, 8x8     118 ms    61 ms
    2560->1280 3x3, 8x8     238 ms   123 ms
    1280->1280 3x3, 16x16   175 ms   194 ms   (oneDNN ahead from here up)
    1280->640  3x3, 8x8      26 ms    30 ms   (a half-size weight: oneDNN ahead)

2. Linear layers and 1x1 convolutions over many tokens: MKL's matrix product (``F.linear``; PyTorch also sends
   one-thread 1x1 convolutions to it) against oneDNN's 1x1 convolution:

    tokens x in -> out      MKL    oneDNN 1x1
    1024 x 320 -> 320       6.2 ms   3.0 ms
    1024 x 320 -> 2560     42.7 ms  20.7 ms
    4096 x 1280 -> 320     83.3 ms  35.3 ms
    256 x 2560 -> 640      21.7 ms  14.0 ms
    64 x 1280 -> 1280       5.8 ms   7.1 ms   (few tokens: the weight re-layout again; MKL ahead)

The results agree with the library's to float32 rounding (tests/likeness/test_cpu_kernels.py). On CUDA nothing
changes: cuDNN's autotuner already picks a kernel per shape.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# From table 1: the gain needs a weight of SD's 1280->1280 3x3 size (14.7M elements) or more,
# and few output positions (batch x height x width) to share each re-layout.
GEMM_MIN_WEIGHT_ELEMENTS = 14_000_000
GEMM_MAX_OUTPUT_POSITIONS = 64
# From table 2: oneDNN's 1x1 convolution is ahead from 256 tokens on, for layers at least 256 wide (a LoRA's
# rank-32 matrices stay with MKL).
ONEDNN_MIN_TOKENS = 256
ONEDNN_MIN_FEATURES = 256


def gemm_is_faster(*, device_type: str, dtype: torch.dtype, groups: int, zero_padding: bool,
                   weight_elements: int, output_positions: int) -> bool:
    """Whether one matrix product beats the library convolution for this call (see the module's table 1)."""
    return (device_type == "cpu" and dtype == torch.float32 and groups == 1 and zero_padding
            and weight_elements >= GEMM_MIN_WEIGHT_ELEMENTS and output_positions <= GEMM_MAX_OUTPUT_POSITIONS)


def onednn_is_faster(*, device_type: str, dtype: torch.dtype, tokens: int, in_features: int,
                     out_features: int) -> bool:
    """Whether oneDNN's 1x1 convolution beats MKL's product for this linear map (see the module's table 2)."""
    return (device_type == "cpu" and dtype == torch.float32 and tokens >= ONEDNN_MIN_TOKENS
            and min(in_features, out_features) >= ONEDNN_MIN_FEATURES)


def onednn_pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 1x1 convolution (``x`` in NCHW or channels-last) on oneDNN.

    Dilation 2 changes nothing for a 1x1 kernel; it only keeps PyTorch from its one-thread rule for 1x1
    kernels, which sends them to the MKL path that table 2 measures slower.
    """
    return F.conv2d(x, weight, bias, dilation=2)


def linear_on_onednn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear`` as a 1x1 convolution over the tokens, laid out channels-last so no copy is made."""
    features = x.shape[-1]
    tokens = x.reshape(-1, features)
    image = tokens.reshape(1, tokens.shape[0], 1, features).permute(0, 3, 1, 2)  # (1, in, T, 1), channels-last
    out = onednn_pointwise(image, weight.reshape(weight.shape[0], features, 1, 1), bias)
    return out.permute(0, 2, 3, 1).reshape(*x.shape[:-1], weight.shape[0])


def output_length(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv2d_as_gemm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int],
                   padding: tuple[int, int], dilation: tuple[int, int]) -> torch.Tensor:
    """``F.conv2d`` (groups 1, zero padding) as ``unfold`` and one matrix product, in ``x``'s memory format."""
    n, channels, height, width = x.shape
    out_channels, _, kernel_h, kernel_w = weight.shape
    out_h = output_length(height, kernel_h, stride[0], padding[0], dilation[0])
    out_w = output_length(width, kernel_w, stride[1], padding[1], dilation[1])
    columns = F.unfold(x, (kernel_h, kernel_w), dilation=dilation, padding=padding, stride=stride)  # (n, C*kh*kw, L)
    if weight.is_contiguous():
        matrix = weight.reshape(out_channels, -1)  # rows in (C, kh, kw) order, like the columns
    else:
        # A channels-last weight lies as (O, kh, kw, C): read it in place, reorder the (much smaller) columns.
        matrix = weight.permute(0, 2, 3, 1).reshape(out_channels, -1)
        positions = columns.shape[-1]
        columns = columns.view(n, channels, kernel_h * kernel_w, positions).transpose(1, 2)
        columns = columns.reshape(n, kernel_h * kernel_w * channels, positions)
    out = columns.transpose(1, 2) @ matrix.t()  # (n, L, O): channels last for free
    if bias is not None:
        out = out + bias
    out = out.view(n, out_h, out_w, out_channels).permute(0, 3, 1, 2)
    return out if x.is_contiguous(memory_format=torch.channels_last) else out.contiguous()


class FasterCpuConv2d(torch.nn.Conv2d):
    """An ``nn.Conv2d`` that takes the faster path for the calls the two rules pick (library path otherwise)."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if x.dim() == 4 and isinstance(self.padding, tuple):  # padding="same"/"valid" strings: library path
            if (self.kernel_size == (1, 1) and self.stride == (1, 1) and self.padding == (0, 0)
                    and self.dilation == (1, 1) and self.groups == 1
                    and onednn_is_faster(device_type=x.device.type, dtype=x.dtype,
                                         tokens=x.shape[0] * x.shape[2] * x.shape[3],
                                         in_features=self.in_channels, out_features=self.out_channels)):
                return onednn_pointwise(x, weight, bias)
            out_h = output_length(x.shape[2], self.kernel_size[0], self.stride[0], self.padding[0], self.dilation[0])
            out_w = output_length(x.shape[3], self.kernel_size[1], self.stride[1], self.padding[1], self.dilation[1])
            if gemm_is_faster(device_type=x.device.type, dtype=x.dtype, groups=self.groups,
                              zero_padding=self.padding_mode == "zeros", weight_elements=weight.numel(),
                              output_positions=x.shape[0] * out_h * out_w):
                return conv2d_as_gemm(x, weight, bias, self.stride, self.padding, self.dilation)
        return super()._conv_forward(x, weight, bias)


class FasterCpuLinear(torch.nn.Linear):
    """An ``nn.Linear`` that runs on oneDNN for the calls :func:`onednn_is_faster` picks."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() >= 2 and onednn_is_faster(device_type=x.device.type, dtype=x.dtype,
                                             tokens=x.numel() // max(x.shape[-1], 1),
                                             in_features=self.in_features, out_features=self.out_features):
            return linear_on_onednn(x, self.weight, self.bias)
        return super().forward(x)


def use_faster_cpu_kernels(model: torch.nn.Module) -> int:
    """Let every plain ``nn.Conv2d`` and ``nn.Linear`` of ``model`` take the faster path per call; returns how many.

    A module keeps its parameters and state dict (only its class changes), so saving, loading and LoRA
    wrapping are unaffected.
    """
    swaps = {torch.nn.Conv2d: FasterCpuConv2d, torch.nn.Linear: FasterCpuLinear}
    count = 0
    for module in model.modules():
        faster = swaps.get(type(module))
        if faster is not None:
            module.__class__ = faster
            count += 1
    return count
