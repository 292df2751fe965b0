"""Loading through the model role (tiny files in the published format) and the motion helpers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from portrait_studio.config import Settings
from portrait_studio.errors import MissingWeightsError
from portrait_studio.models.locator import is_random_weights
from portrait_studio.models.manager import ModelManager
from portrait_studio.progress import CancelToken, no_progress
from portrait_studio.talk.checkpoint import MAPPING_FILES, checkpoint_name, load_mapping
from portrait_studio.talk.config import tiny_config
from portrait_studio.talk.engine import ROLE, _mapping_safetensors, render_frames, talk_nets
from portrait_studio.talk.motion import blink_ratios, predict_pose, semantic_windows, smooth_pose


def test_tiny_role_has_published_file_names(tiny_manager: ModelManager) -> None:
    folder = tiny_manager.locator.path(ROLE)
    names = {p.name for p in folder.iterdir()}
    assert {checkpoint_name(256), checkpoint_name(512), *MAPPING_FILES.values()} <= names
    assert is_random_weights(folder / checkpoint_name(256))


def test_mapping_pickle_is_converted_once_to_safetensors(tiny_manager: ModelManager) -> None:
    folder = tiny_manager.locator.path(ROLE)
    for mode, coeffs in (("crop", 70), ("full", 73)):
        target = _mapping_safetensors(tiny_manager, folder / MAPPING_FILES[mode])
        assert target.suffix == ".safetensors" and target.parent == tiny_manager.settings.weights_dir / ROLE
        stamp = target.stat().st_mtime_ns
        assert _mapping_safetensors(tiny_manager, folder / MAPPING_FILES[mode]).stat().st_mtime_ns == stamp
        net = load_mapping(target)
        assert net.first[0].in_channels == coeffs
        assert net.fc_exp.out_features == 3 * tiny_config().renderer.num_kp


def test_512_renderer_renders_512_frames(tiny_manager: ModelManager) -> None:
    with talk_nets(tiny_manager, 512, "crop") as nets:
        source = np.full((512, 512, 3), 128, np.uint8)
        coeffs = np.zeros((2, 70), np.float32)
        frames = list(render_frames(nets, source, coeffs[0], coeffs, no_progress, CancelToken()))
    assert len(frames) == 2 and frames[0].shape == (512, 512, 3) and frames[0].dtype == np.uint8


def test_missing_checkpoint_names_the_file(tiny_settings: Settings, tiny_manager: ModelManager, tmp_path: Path) -> None:
    copy = tmp_path / "sadtalker"
    shutil.copytree(tiny_manager.locator.path(ROLE), copy)
    (copy / checkpoint_name(512)).unlink()
    manager = ModelManager(tiny_settings.replace(model_overrides={ROLE: str(copy)}))
    with pytest.raises(MissingWeightsError, match=r"SadTalker_V0\.0\.2_512\.safetensors is missing"):
        with talk_nets(manager, 512, "crop"):
            pass


def test_semantic_windows_clamp_at_the_edges() -> None:
    coeffs = np.arange(5, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    windows = semantic_windows(coeffs)
    assert windows.shape == (5, 3, 27)
    assert windows[0, 0, 0] == 0 and windows[0, 0, 13] == 0 and windows[0, 0, 14] == 1 and windows[0, 0, -1] == 4
    assert windows[4, 0, 13] == 4 and windows[4, 0, 0] == 0


def test_blinks_are_short_and_absent_in_short_clips() -> None:
    assert not blink_ratios(20, np.random.default_rng(0)).any()
    ratios = blink_ratios(300, np.random.default_rng(0))[:, 0]
    assert ratios.max() == 1.0
    np.testing.assert_allclose(sorted(set(ratios[ratios > 0].tolist())), [0.5, 0.9, 1.0], rtol=1e-6)
    assert (ratios == 1.0).sum() >= 2


def test_pose_smoothing_handles_short_clips() -> None:
    rng = np.random.default_rng(0)
    for length in (1, 2, 3, 12, 40):
        pose = rng.normal(size=(length, 6))
        smoothed = smooth_pose(pose)
        assert smoothed.shape == pose.shape
    noisy = rng.normal(size=(40, 6))
    assert np.diff(smooth_pose(noisy), axis=0).std() < np.diff(noisy, axis=0).std()


@pytest.mark.parametrize("frames", [1, 5, 33, 70])
def test_pose_sequence_covers_every_frame(tiny_manager: ModelManager, frames: int) -> None:
    with talk_nets(tiny_manager, 256, "crop") as nets:
        ref = torch.zeros(1, 6)
        mels = torch.randn(1, frames, 1, 80, 16)
        pose = predict_pose(nets.audio2pose, mels, ref, 2, torch.Generator().manual_seed(0))
    assert pose.shape == (1, frames, 6)
    assert torch.equal(pose[0, 0], ref[0])  # frame 0 is the source pose
