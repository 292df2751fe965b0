"""Golden outputs of the diffusion half: ReferenceNet -> reference attention -> denoising UNet with motion
modules and pose features, against AniPortrait's own definitions (``UNet2DConditionModel``,
``UNet3DConditionModel`` with the ``inference_v2.yaml`` motion-module settings, ``ReferenceAttentionControl``
in "full" fusion with classifier-free guidance), run once outside this repository in float64.

Small channels (32/32/64/64, one layer per block, 8 heads) with the published block structure; weights from
``synthetic_state`` over the published key names (motion-module position tables are the sinusoidal formula,
as in the real files). Tolerances are float64 round-off, so the check is portable across CPUs; it runs on
the default and the one-thread kernel path (``tests/kernel_paths.py``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel

from portrait_studio.talk.aniportrait.checkpoint import state_layout
from portrait_studio.talk.aniportrait.denoising_unet import (
    DenoisingUNet,
    build_motion_unet,
    to_diffusers_keys,
    to_published_keys,
)
from portrait_studio.talk.aniportrait.reference_attention import reading, recording, spatial_blocks
from portrait_studio.talk.aniportrait.reference_net import build_reference_net
from portrait_studio.talk.checkpoint import synthetic_state
from tests.talk._golden_inputs import FIXTURES, pattern

TINY = dict(block_out_channels=(32, 32, 64, 64), layers_per_block=1, cross_attention_dim=24, attention_head_dim=8,
            norm_num_groups=32, sample_size=16)
FRAMES = 4
POSE_SHAPES = [(32, 16, 16), (32, 8, 8), (32, 4, 4), (64, 2, 2), (64, 2, 2)]


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "aniportrait_unet_goldens.npz") as data:
        return {k: data[k] for k in data.files}


def sinusoid_table(length: int, dim: int) -> torch.Tensor:
    """The motion modules' position table, computed as the reference computes it (float32)."""
    position = torch.arange(length).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
    table = torch.zeros(1, length, dim)
    table[0, :, 0::2] = torch.sin(position * div)
    table[0, :, 1::2] = torch.cos(position * div)
    return table


@pytest.fixture(scope="module")
def nets() -> tuple[torch.nn.Module, DenoisingUNet]:
    config = dict(UNet2DConditionModel(**TINY).config)
    reference = build_reference_net(config)
    reference.load_state_dict(synthetic_state(state_layout(reference), seed=31))
    unet = build_motion_unet(config)
    published = to_published_keys(state_layout(unet))
    state = synthetic_state({k: s for k, s in published.items() if not k.endswith(".pe")}, seed=32)
    state.update({k: sinusoid_table(s[1], s[2]) for k, s in published.items() if k.endswith(".pe")})
    unet.load_state_dict(to_diffusers_keys(state))
    return reference.double().eval(), DenoisingUNet(unet).double().eval()


def _inputs() -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    embeds = torch.cat([torch.zeros(1, 1, 24), pattern((1, 1, 24), 42)]).double()  # [unconditional, image]
    latents = pattern((1, 4, FRAMES, 16, 16), 43).double().repeat(2, 1, 1, 1, 1)
    pose = [pattern((1, c, FRAMES, h, w), 50 + i).double().repeat(2, 1, 1, 1, 1) * 0.5
            for i, (c, h, w) in enumerate(POSE_SHAPES)]
    return embeds, latents, pose


def _close(actual: torch.Tensor, expected: np.ndarray) -> None:
    torch.testing.assert_close(actual, torch.from_numpy(expected), rtol=1e-9, atol=1e-11)


def test_position_table_is_the_reference_formula(golden: dict[str, np.ndarray]) -> None:
    assert torch.equal(sinusoid_table(32, 32), torch.from_numpy(golden["mm.pe"]))


@torch.no_grad()
def test_denoising_unet_with_pose_features(golden: dict[str, np.ndarray], nets, float64_kernel_path: str) -> None:
    _, unet = nets
    embeds, latents, pose = _inputs()
    _close(unet(latents, torch.tensor(601), embeds, pose), golden["den.plain"])


@torch.no_grad()
def test_reference_attention_with_guidance(golden: dict[str, np.ndarray], nets, float64_kernel_path: str) -> None:
    reference, unet = nets
    embeds, latents, pose = _inputs()
    t = torch.tensor(601)
    with recording(reference) as bank:
        features = reference(pattern((1, 4, 16, 16), 41).double().repeat(2, 1, 1, 1), torch.zeros_like(t),
                             encoder_hidden_states=embeds).sample
    _close(features[:, :, ::2, ::2], golden["ref.out_sub"])
    assert len(bank) == len(spatial_blocks(unet.unet)) == 10  # tiny: 3 down + 1 mid + 3 x 2 up blocks
    with reading(unet.unet, bank, guidance=True):
        _close(unet(latents, t, embeds, pose), golden["den.reference"])
    # reading is undone on exit: the plain output again
    _close(unet(latents, t, embeds, pose), golden["den.plain"])



@torch.no_grad()
def test_diffusers_stock_motion_norm_would_not_match(golden: dict[str, np.ndarray], nets) -> None:
    """Why FrameGroupNorm exists: diffusers normalises the motion modules' input over all frames at once."""
    from portrait_studio.talk.aniportrait.denoising_unet import FrameGroupNorm

    _, unet = nets
    swapped = [m for m in unet.modules() if isinstance(m, FrameGroupNorm)]
    assert len(swapped) == 13  # tiny: 4 down + 1 mid + 4 x 2 up motion modules
    embeds, latents, pose = _inputs()
    try:
        for module in swapped:
            module.__class__ = torch.nn.GroupNorm
        stock = unet(latents, torch.tensor(601), embeds, pose)
    finally:
        for module in swapped:
            module.__class__ = FrameGroupNorm
    assert (stock - torch.from_numpy(golden["den.plain"])).abs().max() > 1e-3
