"""Sizes of every talk sub-network. The defaults are the published SadTalker V0.0.2 sizes.

Tiny random checkpoints record a smaller :class:`EngineConfig` as JSON in their safetensors
metadata (key :data:`CONFIG_METADATA_KEY`); a checkpoint without it is the published one.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

CONFIG_METADATA_KEY = "portrait_studio.talk_config"

FPS = 25
SAMPLE_RATE = 16_000
MEL_WINDOW = 16  # mel frames seen per video frame
SEMANTIC_RADIUS = 13  # the renderer sees 2 * 13 + 1 frames of coefficients around each frame
EXP_DIM = 64
POSE_DIM = 6
CROP_PARAMS_DIM = 3


@dataclass(frozen=True)
class RendererConfig:
    num_kp: int = 15
    image_channel: int = 3
    # canonical keypoint detector
    kp_expansion: int = 32
    kp_max_features: int = 1024
    kp_levels: int = 5
    kp_reshape_channel: int = 16384
    kp_reshape_depth: int = 16
    kp_scale: float = 0.25
    kp_temperature: float = 0.1
    # appearance encoder + warping
    gen_expansion: int = 64
    gen_max_features: int = 512
    gen_down_blocks: int = 2
    gen_reshape_channel: int = 32
    gen_reshape_depth: int = 16
    gen_resblocks: int = 6
    # dense motion
    motion_expansion: int = 32
    motion_max_features: int = 1024
    motion_levels: int = 5
    motion_compress: int = 4
    # SPADE decoder
    decoder_out_channels: int = 64
    decoder_hidden: int = 128
    decoder_middle_blocks: int = 6
    # mapping network (coefficients -> pose, translation, keypoint deltas)
    mapping_descriptor: int = 1024
    mapping_layers: int = 3
    num_bins: int = 66

    @property
    def decoder_in_channels(self) -> int:
        return self.gen_expansion * 2**self.gen_down_blocks


@dataclass(frozen=True)
class AudioNetConfig:
    # wav2lip-style mel encoder shared by the expression and the pose networks
    encoder_channels: tuple[int, ...] = (32, 64, 128, 256, 512)
    # pose CVAE
    seq_len: int = 32
    latent_size: int = 64
    num_classes: int = 46
    audio_emb_out: int = 6
    decoder_layer_sizes: tuple[int, ...] = (128, 192)
    encoder_layer_sizes: tuple[int, ...] = (192, 128)  # training only; present in the checkpoint
    resunet_filters: tuple[int, int, int, int] = (32, 64, 128, 256)
    discriminator_channels: tuple[int, int, int] = (256, 512, 1024)  # training only

    @property
    def audio_emb_in(self) -> int:
        return self.encoder_channels[-1]


@dataclass(frozen=True)
class ReconConfig:
    """ResNet-50 regressing 3DMM coefficients from a 224 px aligned face."""

    stem: int = 64
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    blocks: tuple[int, int, int, int] = (3, 4, 6, 3)
    expansion: int = 4
    input_size: int = 224


@dataclass(frozen=True)
class EngineConfig:
    renderer: RendererConfig = field(default_factory=RendererConfig)
    audio: AudioNetConfig = field(default_factory=AudioNetConfig)
    recon: ReconConfig = field(default_factory=ReconConfig)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EngineConfig:
        raw = json.loads(text)

        def build(kind: type, values: dict) -> object:
            names = {f.name: f for f in dataclasses.fields(kind)}
            unknown = set(values) - set(names)
            if unknown:
                raise ValueError(f"unknown {kind.__name__} fields: {sorted(unknown)}")
            return kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

        return cls(
            renderer=build(RendererConfig, raw.get("renderer", {})),  # type: ignore[arg-type]
            audio=build(AudioNetConfig, raw.get("audio", {})),  # type: ignore[arg-type]
            recon=build(ReconConfig, raw.get("recon", {})),  # type: ignore[arg-type]
        )


def tiny_config() -> EngineConfig:
    """Small channels, same structure and key grammar: runs a frame in milliseconds on a CPU."""
    return EngineConfig(
        renderer=RendererConfig(
            num_kp=4,
            kp_expansion=4, kp_max_features=16, kp_levels=3, kp_reshape_channel=64, kp_reshape_depth=4,
            gen_expansion=2, gen_max_features=16, gen_reshape_channel=8, gen_reshape_depth=2, gen_resblocks=1,
            motion_expansion=4, motion_max_features=8, motion_levels=2, motion_compress=1,
            decoder_out_channels=4, decoder_hidden=4, decoder_middle_blocks=1,
            mapping_descriptor=16, mapping_layers=1,
        ),
        audio=AudioNetConfig(
            encoder_channels=(4, 4, 8, 8, 16), decoder_layer_sizes=(16, 192), encoder_layer_sizes=(192, 16),
            resunet_filters=(4, 4, 8, 8), discriminator_channels=(4, 4, 8),
        ),
        recon=ReconConfig(stem=8, widths=(4, 8, 8, 16), blocks=(1, 1, 1, 1)),
    )
