"""Our modules must match the published checkpoint layout key for key, shape for shape.

``sadtalker_layout.txt`` was derived from the reference network definitions (SadTalker V0.0.2 with
its published configs); it lists the five sub-networks of ``SadTalker_V0.0.2_{256,512}.safetensors``
and both mapping networks.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from portrait_studio.talk.checkpoint import (
    CheckpointMismatch,
    build_part,
    checkpoint_layout,
    load_part,
    mapping_layout,
    save_atomic,
    synthetic_state,
)
from portrait_studio.talk.config import CONFIG_METADATA_KEY, EngineConfig, tiny_config
from tests.talk._golden_inputs import FIXTURES


def _published() -> tuple[dict[str, tuple[int, ...]], dict[str, dict[str, tuple[int, ...]]]]:
    main: dict[str, tuple[int, ...]] = {}
    mappings: dict[str, dict[str, tuple[int, ...]]] = {"mapping_00229": {}, "mapping_00109": {}}
    for line in (FIXTURES / "sadtalker_layout.txt").read_text().splitlines():
        key, shape_text = line.rsplit(" ", 1)
        shape = () if shape_text == "scalar" else tuple(int(n) for n in shape_text.split("x"))
        if ":" in key:
            file, key = key.split(":", 1)
            mappings[file][key] = shape
        else:
            main[key] = shape
    return main, mappings


def test_published_layout_counts() -> None:
    main, mappings = _published()
    counts = Counter(key.split(".", 1)[0] for key in main)
    assert counts == {"kp_extractor": 75, "generator": 386, "audio2exp": 93, "audio2pose": 419, "face_3drecon": 332}
    assert len(main) == 1305
    assert sum(1 for k in main if k.startswith("generator.") and k.endswith(".weight_orig")) == 18
    assert mappings["mapping_00229"]["first.0.weight"] == (1024, 70, 7)
    assert mappings["mapping_00109"]["first.0.weight"] == (1024, 73, 7)


def test_our_modules_match_published_layout_exactly() -> None:
    main, mappings = _published()
    ours = checkpoint_layout(EngineConfig())
    assert list(ours) == list(main) or set(ours) == set(main)
    assert {k: ours[k] for k in main} == main
    assert mapping_layout(mode="crop") == mappings["mapping_00229"]
    assert mapping_layout(mode="full") == mappings["mapping_00109"]


def test_tiny_layout_uses_same_key_grammar() -> None:
    main, _ = _published()
    tiny = checkpoint_layout(tiny_config())
    # every tiny key exists in the published file (fewer repeated blocks, smaller channels)
    assert set(tiny) <= set(main)
    assert {k.split(".", 1)[0] for k in tiny} == {k.split(".", 1)[0] for k in main}


def test_audio2pose_training_keys_are_tolerated(tmp_path) -> None:
    cfg = tiny_config()
    layout = checkpoint_layout(cfg)
    assert any(k.startswith("audio2pose.netD_motion.") for k in layout)
    path = tmp_path / "ckpt.safetensors"
    save_atomic(synthetic_state(layout), path, {CONFIG_METADATA_KEY: cfg.to_json()})
    net = load_part(path, "audio2pose")
    assert not any(k.startswith(("netD_motion", "netG.encoder")) for k in net.state_dict())
    assert not net.training


def test_mismatched_checkpoint_is_reported(tmp_path) -> None:
    cfg = tiny_config()
    layout = checkpoint_layout(cfg)
    layout.pop("audio2exp.mapping1.bias")
    layout["audio2exp.mapping1.weight"] = (3, 3)
    path = tmp_path / "bad.safetensors"
    save_atomic(synthetic_state(layout), path, {CONFIG_METADATA_KEY: cfg.to_json()})
    with pytest.raises(CheckpointMismatch, match=r"audio2exp.*1 missing.*1 wrong-shaped"):
        load_part(path, "audio2exp")


def test_spectral_norm_matches_torch_eval_semantics() -> None:
    """Our stored-vector spectral norm equals torch's spectral_norm in eval mode."""
    from portrait_studio.talk.nets.layers import SpectralConv2d

    torch.manual_seed(0)
    reference = torch.nn.utils.spectral_norm(torch.nn.Conv2d(6, 5, 3, padding=1))
    reference(torch.randn(1, 6, 8, 8))  # one power iteration updates u, v
    reference.eval()
    ours = SpectralConv2d(6, 5, 3, padding=1)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 6, 8, 8)
    torch.testing.assert_close(ours(x), reference(x))


def test_build_part_rejects_unknown_name() -> None:
    with pytest.raises(KeyError):
        build_part("he_estimator", EngineConfig())
