"""Golden outputs: the reference SadTalker definitions and ours, loaded with the same synthetic
weights (``synthetic_state`` over the published layout), agree on fixed inputs.

The reference outputs in ``sadtalker_goldens.npz`` were produced once, outside this repository,
by running the published network code on these weights; real (published) sizes throughout, with
reduced image sizes (128 px) for the keypoint detector and the generator.

Precision argument (why these hold on every CPU and still catch a wrong layer): the fixture holds the
reference's float32 outputs, i.e. the exact values plus that one run's float32 rounding, a fixed error that
travels with the file. Our networks run here in float64, where kernels on any CPU agree to ~1e-12, so the
difference we test is the fixture's own rounding and is the same number on every machine. Measured: at
most 2.6e-6 of the output scale for every sub-network, 1.8e-5 for the generator's logits (magnitude ~175),
which its sigmoid turns into at most 3.5e-4 on the image. The tolerances (1e-4, and 1e-3 for the generator)
sit 30-40x above those, while one wrong operation moves the outputs by at least 10x the tolerance
(``test_one_wrong_layer_fails_its_golden_test``). Each test runs on the float64 kernel paths, default and one
thread (``tests/kernel_paths.py``): oneDNN has no float64 kernels, so a "oneDNN off" run would repeat the default
one operation for operation (checked by ``tests/foundation/test_kernel_paths.py``).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from portrait_studio.talk.checkpoint import build_mapping, build_part, synthetic_state
from portrait_studio.talk.config import EngineConfig
from portrait_studio.talk.motion import predict_pose
from portrait_studio.talk.nets.keypoints import transform_keypoints
from tests.talk._golden_inputs import FIXTURES
from tests.talk._golden_inputs import pattern as float32_pattern

CFG = EngineConfig()


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "sadtalker_goldens.npz") as data:
        return {k: data[k] for k in data.files}


def _loaded(name: str, module: torch.nn.Module | None = None) -> torch.nn.Module:
    module = module or build_part(name, CFG)
    layout = {f"{name}.{k}": tuple(v.shape) for k, v in module.state_dict().items()}
    state = synthetic_state(layout)
    module.load_state_dict({k[len(name) + 1:]: v for k, v in state.items()})
    return module.eval().to(torch.float64)


def pattern(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """The fixture's inputs (float32 values, as the reference saw them), carried in float64."""
    return float32_pattern(shape, seed).to(torch.float64)


def _close(actual: torch.Tensor, expected: np.ndarray, rtol: float = 1e-4, atol: float = 1e-4) -> None:
    assert actual.dtype == torch.float64, "golden comparisons run our side in float64 (see the module docstring)"
    torch.testing.assert_close(actual, torch.from_numpy(expected).to(torch.float64), rtol=rtol, atol=atol)


@torch.no_grad()
def test_face_recon(golden: dict[str, np.ndarray], float64_kernel_path: str) -> None:
    net = _loaded("face_3drecon")
    image = pattern((1, 3, 224, 224), 1) * 0.5 + 0.5
    _close(net(image), golden["recon.out"])


def _check_expression_net(net: torch.nn.Module, golden: dict[str, np.ndarray]) -> None:
    mels, ref, blink = pattern((1, 10, 1, 80, 16), 2), pattern((1, 10, 64), 3), pattern((1, 10, 1), 4).abs()
    _close(net(mels, ref, blink), golden["exp.out"])


@torch.no_grad()
def test_expression_net(golden: dict[str, np.ndarray], float64_kernel_path: str) -> None:
    _check_expression_net(_loaded("audio2exp"), golden)


@torch.no_grad()
def test_pose_net_parts_and_sequence(golden: dict[str, np.ndarray], float64_kernel_path: str) -> None:
    net = _loaded("audio2pose")
    emb = net.encode_audio(pattern((1, 32, 1, 80, 16), 5))
    _close(emb[:, :, :16], golden["pose.emb_slice"])
    decoded = net.decode(pattern((1, 64), 6), torch.tensor([3]), pattern((1, 6), 7), pattern((1, 32, 512), 8))
    _close(decoded, golden["pose.dec"])
    # the whole chunked sequence (45 frames: one full chunk of 32 + a tail of 12), same latent draws
    frames = 45
    ref = pattern((1, frames, 70), 9)[:, 0, -6:]
    pose = predict_pose(net, pattern((1, frames, 1, 80, 16), 10), ref, 5, torch.Generator().manual_seed(1234))
    _close(pose, golden["pose.seq"])


@pytest.mark.parametrize("mode,coeffs", [("crop", 70), ("full", 73)])
@torch.no_grad()
def test_mapping_and_keypoint_transform(
    golden: dict[str, np.ndarray], mode: str, coeffs: int, float64_kernel_path: str
) -> None:
    net = _loaded("mapping", build_mapping(CFG, mode))
    motion = net(pattern((2, coeffs, 27), 11))
    for key in ("yaw", "pitch", "roll", "t", "exp"):
        _close(motion[key], golden[f"map.{mode}.{key}"])
    kp = transform_keypoints(pattern((2, 15, 3), 12) * 0.5, motion)
    _close(kp, golden[f"map.{mode}.kp"])


def _check_keypoint_detector(net: torch.nn.Module, golden: dict[str, np.ndarray]) -> None:
    _close(net(pattern((1, 3, 128, 128), 13) * 0.5 + 0.5), golden["kp.out"])


@torch.no_grad()
def test_keypoint_detector(golden: dict[str, np.ndarray], float64_kernel_path: str) -> None:
    _check_keypoint_detector(_loaded("kp_extractor"), golden)


@torch.no_grad()
def test_generator(golden: dict[str, np.ndarray], float64_kernel_path: str) -> None:
    net = _loaded("generator")
    captured: dict[str, torch.Tensor] = {}
    net.decoder.conv_img.register_forward_hook(lambda m, i, o: captured.__setitem__("logits", o))
    net.dense_motion_network.register_forward_hook(lambda m, i, o: captured.__setitem__("deform", o[0]))
    source = pattern((1, 3, 128, 128), 13) * 0.5 + 0.5
    kp_s = pattern((1, 15, 3), 14) * 0.6
    kp_d = kp_s + pattern((1, 15, 3), 15) * 0.05
    image = net(source, kp_d, kp_s)
    _close(captured["deform"][:, ::4, ::4, ::4], golden["gen.deform_sub"])
    logits = captured["logits"]
    scale = float(golden["gen.logits_stats"][1])
    _close(logits[:, :, ::8, ::8] / scale, golden["gen.logits_sub"] / scale, rtol=1e-3, atol=1e-3)
    _close(image[:, :, ::8, ::8], golden["gen.pred_sub"], rtol=1e-3, atol=1e-3)
    stats = torch.stack([image.mean(), image.std(), image.min(), image.max()])
    _close(stats, golden["gen.pred_stats"], rtol=1e-3, atol=1e-3)


def _transposed_square_conv(net: torch.nn.Module) -> None:
    """A weight read with input and output channels swapped (ExpNet's first 32->32 residual conv)."""
    conv = net.get_submodule("audio_encoder.1.conv_block.0")
    conv.weight.data = conv.weight.data.transpose(0, 1).contiguous()


def _batch_statistics(net: torch.nn.Module) -> None:
    """One BatchNorm normalising with the batch's statistics instead of its running ones (train mode)."""
    net.get_submodule("predictor.down_blocks.down2.norm").train()


def _replicate_padding(net: torch.nn.Module) -> None:
    """The keypoint head pads by repeating edges instead of with zeros."""
    net.get_submodule("kp").padding_mode = "replicate"


@pytest.mark.parametrize(
    ("part", "check", "break_one_layer"),
    [
        ("audio2exp", _check_expression_net, _transposed_square_conv),
        ("kp_extractor", _check_keypoint_detector, _batch_statistics),
        ("kp_extractor", _check_keypoint_detector, _replicate_padding),
    ],
)
@torch.no_grad()
def test_one_wrong_layer_fails_its_golden_test(golden: dict[str, np.ndarray], part, check, break_one_layer) -> None:
    net = _loaded(part)
    check(net, golden)
    break_one_layer(net)
    with pytest.raises(AssertionError, match="Tensor-likes are not close") as failure:
        check(net, golden)
    # not a near miss: at least 10x the 1e-4 tolerance (the mildest break here, one BatchNorm, is off by 4e-3)
    assert float(re.search(r"Greatest absolute difference: (\S+)", str(failure.value)).group(1)) > 1e-3
