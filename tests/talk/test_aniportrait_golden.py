"""Golden outputs: AniPortrait's reference definitions and ours, loaded with the same synthetic weights
(``synthetic_state`` over each layout), agree on fixed inputs in float64.

``aniportrait_goldens.npz`` was produced once, outside this repository, by running the published network
code (AniPortrait at commit 7f6593f) in float64 on these weights and inputs. The tolerances are float64
round-off (1e-9 relative): the comparison does not depend on the CPU's float32 kernels, so it holds on any
x86/ARM machine; like every float64 golden, each runs on the default and the one-thread kernel path
(``tests/kernel_paths.py``). The PoseGuider has its published sizes (on 128 px frames); audio2mesh/audio2pose have their
published heads on a tiny random wav2vec2 encoder (saved and reloaded through ``from_pretrained`` for the
reference run).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from portrait_studio.talk.aniportrait.audio_models import Audio2Mesh, Audio2Pose
from portrait_studio.talk.aniportrait.checkpoint import state_layout
from portrait_studio.talk.aniportrait.pose_guider import PoseGuider
from portrait_studio.talk.checkpoint import synthetic_state
from tests.talk._aniportrait_inputs import tiny_wav2vec_config
from tests.talk._golden_inputs import FIXTURES, pattern

FRAMES = 15  # 0.5 s of audio at AniPortrait's 30 fps


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "aniportrait_goldens.npz") as data:
        return {k: data[k] for k in data.files}


def _close(actual: torch.Tensor, expected: np.ndarray) -> None:
    torch.testing.assert_close(actual, torch.from_numpy(expected), rtol=1e-9, atol=1e-10)


def _synthetic(module: torch.nn.Module, seed: int, skip: str | None = None) -> torch.nn.Module:
    layout = {k: s for k, s in state_layout(module).items() if not (skip and k.startswith(skip))}
    module.load_state_dict(synthetic_state(layout, seed=seed), strict=skip is None)
    return module


@torch.no_grad()
def test_pose_guider(golden: dict[str, np.ndarray], float64_kernel_path: str) -> None:
    net = _synthetic(PoseGuider(), seed=0).double().eval()
    features = net(pattern((1, 3, 2, 128, 128), 21).double())
    assert [tuple(f.shape[1:]) for f in features] == [
        (320, 2, 16, 16), (320, 2, 8, 8), (640, 2, 4, 4), (1280, 2, 2, 2), (1280, 2, 2, 2)]
    for i, feature in enumerate(features):
        _close(feature[:, ::8, :, ::2, ::2], golden[f"pg.f{i}.sub"])
        _close(torch.stack([feature.mean(), feature.std(), feature.abs().max()]), golden[f"pg.f{i}.stats"])


def _audio_model(cls: type) -> torch.nn.Module:
    net = cls(tiny_wav2vec_config())
    _synthetic(net.audio_encoder, seed=3)
    _synthetic(net, seed=5, skip="audio_encoder.")
    return net.double().eval()


@torch.no_grad()
def test_audio2mesh(golden: dict[str, np.ndarray], float64_kernel_path: str) -> None:
    mesh = _audio_model(Audio2Mesh)(pattern((1, 8000), 23).double() * 0.5, FRAMES)
    assert mesh.shape == (1, FRAMES, 1404)
    _close(mesh[:, :, ::7], golden["a2m.sub"])
    _close(torch.stack([mesh.mean(), mesh.std()]), golden["a2m.stats"])


@torch.no_grad()
def test_audio2pose(golden: dict[str, np.ndarray], float64_kernel_path: str) -> None:
    pose = _audio_model(Audio2Pose)(pattern((1, 8000), 23).double() * 0.5, FRAMES, torch.tensor([7]))
    _close(pose, golden["a2p.pose"])
