"""The training UNet's widest convolutions on the CPU: one matrix product where oneDNN is slow.

PyTorch runs a float32 CPU convolution through oneDNN, which lays the weight out anew for its kernel on
every call, forward and backward. For Stable Diffusion's widest layers at their lowest resolutions (1280
channels at 8x8 and 4x4 latents: the UNet's bottom when training at 256 px, its mid-block at 512 px) that
re-layout costs more than the arithmetic. The same convolution as ``unfold`` + one matrix product reads the
weight as it lies. Measured on this project's CPU (forward and input gradient, channels-last, one thread;
two threads give the same picture):

    weight, output          oneDNN   matrix product
    2560->1280 3x3, 4x4     233 ms    52 ms
    1280->1280 3x3, 8x8     118 ms    61 ms
    2560->1280 3x3, 8x8     238 ms   123 ms
    1280->1280 3x3, 16x16   175 ms   194 ms   (oneDNN ahead from here up)
    1280->640  3x3, 8x8      26 ms    30 ms   (a half-size weight: oneDNN ahead)

It is the same sum in another order, so results agree to float32 rounding; and since the choice is a pure
function of shapes, a resumed run makes the same choices as the run it resumes. On CUDA nothing changes:
cuDNN's autotuner already picks a kernel per shape.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# From the table above: the gain needs a weight of SD's 1280->1280 3x3 size (14.7M elements) or more,
# and few output positions (batch x height x width) to share each re-layout.
GEMM_MIN_WEIGHT_ELEMENTS = 14_000_000
GEMM_MAX_OUTPUT_POSITIONS = 64


def gemm_is_faster(*, device_type: str, dtype: torch.dtype, groups: int, zero_padding: bool,
                   weight_elements: int, output_positions: int) -> bool:
    """Whether one matrix product beats the library convolution for this call (see the module's table)."""
    return (device_type == "cpu" and dtype == torch.float32 and groups == 1 and zero_padding
            and weight_elements >= GEMM_MIN_WEIGHT_ELEMENTS and output_positions <= GEMM_MAX_OUTPUT_POSITIONS)


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


class GemmWhereFasterConv2d(torch.nn.Conv2d):
    """An ``nn.Conv2d`` that takes the matrix-product path for the calls :func:`gemm_is_faster` picks."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if x.dim() == 4 and isinstance(self.padding, tuple):  # padding="same"/"valid" strings: library path
            out_h = output_length(x.shape[2], self.kernel_size[0], self.stride[0], self.padding[0], self.dilation[0])
            out_w = output_length(x.shape[3], self.kernel_size[1], self.stride[1], self.padding[1], self.dilation[1])
            if gemm_is_faster(device_type=x.device.type, dtype=x.dtype, groups=self.groups,
                              zero_padding=self.padding_mode == "zeros", weight_elements=weight.numel(),
                              output_positions=x.shape[0] * out_h * out_w):
                return conv2d_as_gemm(x, weight, bias, self.stride, self.padding, self.dilation)
        return super()._conv_forward(x, weight, bias)


def use_gemm_where_faster(model: torch.nn.Module) -> int:
    """Let every plain ``nn.Conv2d`` of ``model`` take the faster path per call; returns how many.

    The module keeps its parameters and state dict (only its class changes), so saving, loading and LoRA
    wrapping are unaffected.
    """
    count = 0
    for module in model.modules():
        if type(module) is torch.nn.Conv2d:
            module.__class__ = GemmWhereFasterConv2d
            count += 1
    return count
