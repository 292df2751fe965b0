"""Shared by the AniPortrait layout and golden tests: the published key list and the tiny wav2vec2 sizes."""

from __future__ import annotations

from transformers import Wav2Vec2Config

from tests.talk._golden_inputs import FIXTURES

# The wav2vec2 encoder of the golden run: tiny, random, saved and reloaded with from_pretrained.
TINY_WAV2VEC = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                    conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=32)


def tiny_wav2vec_config() -> Wav2Vec2Config:
    return Wav2Vec2Config(**TINY_WAV2VEC)


def published_layout() -> dict[str, dict[str, tuple[int, ...]]]:
    """file name -> key -> shape, from ``aniportrait_layout.txt``."""
    files: dict[str, dict[str, tuple[int, ...]]] = {}
    for line in (FIXTURES / "aniportrait_layout.txt").read_text().splitlines():
        name, shape_text = line.rsplit(" ", 1)
        file, key = name.split(":", 1)
        shape = () if shape_text == "scalar" else tuple(int(n) for n in shape_text.split("x"))
        files.setdefault(file, {})[key] = shape
    return files
