"""Speech -> face mesh offsets (audio2mesh) and head pose (audio2pose), on wav2vec2 features.

Our definitions of AniPortrait's ``Audio2MeshModel`` and ``Audio2PoseModel`` (inference config:
latent 512, mesh 468 x 3 = 1404 values, pose 6 = 3 Euler angles in degrees + 3 translations), loading
``audio2mesh.pt`` / ``audio2pose.pt`` key for key. Both read ``facebook/wav2vec2-base-960h`` through
transformers' ``Wav2Vec2Model`` with one change the reference makes: the conv feature extractor's
frames (50 per second) are resampled linearly (align_corners) to exactly one per video frame before the
feature projection and the transformer encoder. Only the encoder's last hidden state is used.

audio2pose decodes autoregressively: a causal transformer decoder (8 layers, 8 heads, ALiBi-style
biased causal mask) whose frame i may read only audio frame i, plus a learned per-"identity" embedding
(100 speaking styles). Each step re-runs the decoder on all poses so far; the last pass's output is the
pose sequence.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Wav2Vec2Config, Wav2Vec2Model

MESH_POINTS = 468
POSE_DIM = 6
LATENT_DIM = 512
POSE_IDENTITIES = 100
POSE_MAX_FRAMES = 600  # positional table length: the longest sequence one audio2pose call can decode
POSE_HEADS = 8
POSE_LAYERS = 8


def wav2vec_features(encoder: Wav2Vec2Model, audio: torch.Tensor, frames: int) -> torch.Tensor:
    """audio (b, samples), normalised as by Wav2Vec2FeatureExtractor -> (b, frames, hidden)."""
    extracted = encoder.feature_extractor(audio).transpose(1, 2)  # (b, ~50/s, conv_dim)
    extracted = F.interpolate(extracted.transpose(1, 2), size=frames, mode="linear", align_corners=True)
    hidden, _ = encoder.feature_projection(extracted.transpose(1, 2))
    return encoder.encoder(hidden).last_hidden_state


class Audio2Mesh(nn.Module):
    def __init__(self, wav2vec: Wav2Vec2Config, latent_dim: int = LATENT_DIM, out_dim: int = MESH_POINTS * 3) -> None:
        super().__init__()
        self.audio_encoder = Wav2Vec2Model(wav2vec)
        self.in_fn = nn.Linear(wav2vec.hidden_size, latent_dim)
        self.out_fn = nn.Linear(latent_dim, out_dim)

    def forward(self, audio: torch.Tensor, frames: int) -> torch.Tensor:
        """-> (b, frames, out_dim): per-frame offsets of the mesh vertices from the reference face's mesh."""
        return self.out_fn(self.in_fn(wav2vec_features(self.audio_encoder, audio, frames)))


class PositionalTable(nn.Module):
    """Sinusoidal positions stored as a buffer (it is part of the published state dict as ``PPE.pe``)."""

    def __init__(self, dim: int, max_len: int = POSE_MAX_FRAMES) -> None:
        super().__init__()
        position = torch.arange(0, max_len).unsqueeze(1).float()
        div_term = torch.exp(torch.arange(0, dim, 2).float() * -(math.log(10000.0) / dim))
        pe = torch.zeros(max_len, dim)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[:, : x.shape[1]]


def alibi_slopes(heads: int) -> list[float]:
    """ALiBi head slopes (geometric for a power of two, interleaved otherwise)."""
    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(heads).is_integer():
        return power_of_two(heads)
    closest = 2 ** math.floor(math.log2(heads))
    return power_of_two(closest) + alibi_slopes(2 * closest)[0::2][: heads - closest]


def biased_causal_mask(heads: int, length: int) -> torch.Tensor:
    """(heads, length, length) additive mask: -inf above the diagonal, -slope * distance on and below it."""
    distance = torch.arange(length)[:, None] - torch.arange(length)[None, :]
    bias = -distance.clamp(min=0).float()
    slopes = torch.tensor(alibi_slopes(heads))
    future = torch.zeros(length, length).masked_fill(distance < 0, float("-inf"))
    return future[None] + slopes[:, None, None] * bias[None]


class Audio2Pose(nn.Module):
    def __init__(self, wav2vec: Wav2Vec2Config, latent_dim: int = LATENT_DIM, out_dim: int = POSE_DIM,
                 layers: int = POSE_LAYERS, heads: int = POSE_HEADS) -> None:
        super().__init__()
        self.heads = heads
        self.audio_encoder = Wav2Vec2Model(wav2vec)
        self.pose_map = nn.Linear(out_dim, latent_dim)
        self.in_fn = nn.Linear(wav2vec.hidden_size, latent_dim)
        self.PPE = PositionalTable(latent_dim)
        layer = nn.TransformerDecoderLayer(latent_dim, heads, dim_feedforward=2 * latent_dim, batch_first=True)
        self.transformer_decoder = nn.TransformerDecoder(layer, num_layers=layers)
        self.pose_map_r = nn.Linear(latent_dim, out_dim)
        self.id_embed = nn.Embedding(POSE_IDENTITIES, latent_dim)

    @property
    def max_frames(self) -> int:
        return self.PPE.pe.shape[1]

    def forward(self, audio: torch.Tensor, frames: int, identity: torch.Tensor) -> torch.Tensor:
        """audio (1, samples), identity (1,) long in [0, 100) -> (1, frames, 6) pose (degrees, translation)."""
        if frames > self.max_frames:
            raise ValueError(f"audio2pose decodes at most {self.max_frames} frames per call, not {frames}")
        memory = self.in_fn(wav2vec_features(self.audio_encoder, audio, frames))
        style = self.id_embed(identity).unsqueeze(1)
        mask = biased_causal_mask(self.heads, frames).to(memory)
        embedded = self.pose_map(memory.new_zeros(memory.shape[0], 1, self.pose_map.in_features))
        out = memory.new_zeros(memory.shape[0], 0, self.pose_map.in_features)
        for _ in range(frames):
            n = embedded.shape[1]
            query = self.PPE(embedded) + style
            memory_mask = ~torch.eye(n, memory.shape[1], dtype=torch.bool, device=memory.device)
            out = self.pose_map_r(self.transformer_decoder(query, memory, tgt_mask=mask[:, :n, :n].repeat(
                memory.shape[0], 1, 1), memory_mask=memory_mask))
            embedded = torch.cat([embedded, self.pose_map(out[:, -1:])], dim=1)
        return out
