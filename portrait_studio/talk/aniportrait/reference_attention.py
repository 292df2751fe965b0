"""Reference attention: the ReferenceNet's self-attention inputs become extra keys and values of the
denoising UNet's spatial self-attention, block for block.

AniPortrait (after Moore-AnimateAnyone / MagicAnimate) runs the ReferenceNet, a plain SD1.5
``UNet2DConditionModel``, once on the reference latents at timestep 0 and records the normalised
input of every transformer block's self-attention ("write"). In the denoising UNet each spatial
block's self-attention then attends over its own tokens followed by the recorded reference tokens of
the block at the same place ("read"); the reference tokens are shared by every frame. With
classifier-free guidance the unconditional half of the batch keeps plain self-attention.

We do this without replacing any block's forward: a forward pre-hook on the writer's ``attn1`` records,
and an attention processor on the reader's ``attn1`` widens the keys and values. Blocks are paired by
their module path (``down_blocks.1.attentions.0.transformer_blocks.0``...), which is the pairing the
reference code gets from sorting both UNets' blocks by width in registration order; the golden test
checks the two agree. Motion-module blocks (inside ``motion_modules``) are never part of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn


def spatial_blocks(unet: nn.Module) -> dict[str, BasicTransformerBlock]:
    """Every spatial transformer block of a UNet by module path (the motion modules' blocks excluded)."""
    return {
        name: module
        for name, module in unet.named_modules()
        if isinstance(module, BasicTransformerBlock) and ".motion_modules." not in f".{name}."
    }


@contextmanager
def recording(reference_unet: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """While open, every forward of ``reference_unet`` stores each block's self-attention input in the dict."""
    bank: dict[str, torch.Tensor] = {}
    handles = []

    def recorder(name: str):  # noqa: ANN202 - a hook
        def hook(_module: nn.Module, args: tuple, kwargs: dict) -> None:
            bank[name] = (args[0] if args else kwargs["hidden_states"]).detach().clone()

        return hook

    for name, block in spatial_blocks(reference_unet).items():
        handles.append(block.attn1.register_forward_pre_hook(recorder(name), with_kwargs=True))
    try:
        yield bank
    finally:
        for handle in handles:
            handle.remove()


class ReferenceAttnProcessor:
    """Self-attention whose keys/values also cover the recorded reference tokens (repeated for each frame)."""

    def __init__(self, reference: torch.Tensor, guidance: bool, base: AttnProcessor2_0 | None = None) -> None:
        self.reference = reference  # (batch, tokens, channels): one reference per batch row before frames
        self.guidance = guidance  # the first half of the batch is the unconditional branch
        self.base = base or AttnProcessor2_0()

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs: object,
    ) -> torch.Tensor:
        rows, refs = hidden_states.shape[0], self.reference.shape[0]
        if rows % refs:
            raise ValueError(f"{rows} attention rows do not split into {refs} reference rows")
        reference = self.reference.to(hidden_states).repeat_interleave(rows // refs, dim=0)
        context = torch.cat([hidden_states, reference], dim=1)
        out = self.base(attn, hidden_states, context, attention_mask)
        if self.guidance:
            half = rows // 2
            plain = self.base(attn, hidden_states[:half], None, attention_mask)
            out = torch.cat([plain, out[half:]], dim=0)
        return out


@contextmanager
def reading(denoising_unet: nn.Module, bank: dict[str, torch.Tensor], guidance: bool) -> Iterator[None]:
    """While open, the denoising UNet's spatial self-attention also attends to the recorded reference."""
    blocks = spatial_blocks(denoising_unet)
    if set(blocks) != set(bank):
        missing = sorted(set(blocks) ^ set(bank))[:3]
        raise ValueError(f"the reference and denoising UNets have different transformer blocks (e.g. {missing})")
    previous = {name: block.attn1.processor for name, block in blocks.items()}
    try:
        for name, block in blocks.items():
            block.attn1.set_processor(ReferenceAttnProcessor(bank[name], guidance))
        yield
    finally:
        for name, block in blocks.items():
            block.attn1.set_processor(previous[name])
