"""Tiny random AniPortrait files in the published on-disk format, for tests and offline demos.

The six files keep their published names and are plain torch pickles of state dicts with the published key
grammar (motion modules under ``temporal_transformer``, both sinusoidal position tables, the audio encoder's
conv spelled ``weight_g``/``weight_v`` as torch 2.0 wrote it), so loading exercises the data-only unpickling,
the safetensors conversion and the key mapping. Widths follow the published ratios (UNet blocks c, 2c, 4c, 4c
with the PoseGuider at c) so the PoseGuider's features fit the UNet as in the real model.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from portrait_studio.models.roles import Role
from portrait_studio.talk.aniportrait.audio_models import Audio2Mesh, Audio2Pose
from portrait_studio.talk.aniportrait.checkpoint import PUBLISHED_FILES, state_layout
from portrait_studio.talk.aniportrait.denoising_unet import build_motion_unet, to_published_keys
from portrait_studio.talk.aniportrait.nets import SD15_HEADS
from portrait_studio.talk.aniportrait.pose_guider import PoseGuider, PoseGuiderConfig
from portrait_studio.talk.aniportrait.reference_net import build_reference_net
from portrait_studio.talk.checkpoint import synthetic_state

TINY_WIDTH = 32
TINY_IMAGE_EMBED = 32  # the image encoder's projection width = the UNets' cross-attention width
TINY_LATENT = 64  # audio models' latent width (published 512)
TINY_WAV2VEC = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                    conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=32)


def tiny_unet_config() -> dict:
    c = TINY_WIDTH
    return dict(block_out_channels=(c, 2 * c, 4 * c, 4 * c), layers_per_block=1, cross_attention_dim=TINY_IMAGE_EMBED,
                attention_head_dim=SD15_HEADS, norm_num_groups=32,
                down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3)


def _sinusoid(length: int, dim: int) -> torch.Tensor:
    position = torch.arange(length).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
    table = torch.zeros(1, length, dim)
    table[0, :, 0::2] = torch.sin(position * div)
    table[0, :, 1::2] = torch.cos(position * div)
    return table


def _old_weight_norm_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renames = {".parametrizations.weight.original0": ".weight_g", ".parametrizations.weight.original1": ".weight_v"}
    out = {}
    for key, value in state.items():
        for new, old in renames.items():
            key = key.replace(new, old)
        out[key] = value
    return out


def build_aniportrait(folder: Path, role: Role | None = None) -> None:
    from transformers import Wav2Vec2Config

    folder.mkdir(parents=True, exist_ok=True)
    files = {part: folder / name for part, name in PUBLISHED_FILES.items()}
    guider = PoseGuider(PoseGuiderConfig(TINY_WIDTH, 1, TINY_WIDTH))
    torch.save(synthetic_state(state_layout(guider), seed=1), files["pose_guider"])
    torch.save(synthetic_state(state_layout(build_reference_net(tiny_unet_config())), seed=2), files["reference_unet"])
    published = to_published_keys(state_layout(build_motion_unet(tiny_unet_config())))
    state = synthetic_state({k: s for k, s in published.items() if not k.endswith(".pe")}, seed=3)
    state.update({k: _sinusoid(s[1], s[2]) for k, s in published.items() if k.endswith(".pe")})
    torch.save({k: v for k, v in state.items() if ".motion_modules." in k}, files["motion_module"])
    torch.save({k: v for k, v in state.items() if ".motion_modules." not in k}, files["denoising_unet"])
    wav2vec = Wav2Vec2Config(**TINY_WAV2VEC)
    for seed, (part, cls) in enumerate((("audio2mesh", Audio2Mesh), ("audio2pose", Audio2Pose)), start=4):
        model = cls(wav2vec, TINY_LATENT) if part == "audio2mesh" else cls(wav2vec, TINY_LATENT, layers=2)
        layout = {k: s for k, s in state_layout(model).items() if k != "PPE.pe"}
        state = synthetic_state(layout, seed=seed)
        if part == "audio2pose":
            state["PPE.pe"] = model.PPE.pe
        torch.save(_old_weight_norm_names(state), files[part])


def build_wav2vec2(folder: Path, role: Role | None = None) -> None:
    """A tiny ``facebook/wav2vec2-base-960h``-format folder: config, feature-extractor config, weights."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(0)
    Wav2Vec2Model(Wav2Vec2Config(**TINY_WAV2VEC)).save_pretrained(str(folder))
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=False).save_pretrained(str(folder))


def build_image_encoder(folder: Path, role: Role | None = None) -> None:
    """A tiny ``sd-image-variations-diffusers`` snapshot: only its ``image_encoder/`` subfolder."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                              image_size=224, patch_size=32, projection_dim=TINY_IMAGE_EMBED)
    CLIPVisionModelWithProjection(config).save_pretrained(str(folder / "image_encoder"))


def build_vae(folder: Path, role: Role | None = None) -> None:
    """A tiny ``sd-vae-ft-mse``-format AutoencoderKL (downsampling by 8 like the real one; 8 channels wide, as
    it decodes every frame at full size, 256 px at least)."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(block_out_channels=(8, 8, 8, 8), down_block_types=("DownEncoderBlock2D",) * 4,
                  up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, norm_num_groups=8,
                  layers_per_block=1).save_pretrained(str(folder))
