"""Our AnimeGANv2 generator against numbers taken from the reference definition.

``tests/fixtures/animegan_keys.json`` lists the reference state dict (names, shapes, order) and
``animegan_golden.npz`` holds the reference outputs for fixed inputs with the synthetic weights below;
both were generated once outside the repository from bryandlee/animegan2-pytorch's model.py.

Precision argument (why the golden test holds on every CPU and still catches a wrong layer): the reference
outputs were computed in float64 and the test runs our network in float64. float32 through these ~20
convolutions does not agree across CPUs (a float32 run differs from the float64 truth by up to 4.6e-4, and
kernels that sum in another order land elsewhere in that range). In float64 the same bound is about
depth x terms per sum x eps = 20 x 3136 x 1.1e-16 = 7e-12 relative on outputs bounded by 1 (tanh), so
``GOLDEN_ATOL = 1e-9`` leaves a margin of 100x for any kernel, while one wrong operation moves the output by
1e-3 or more (``test_one_wrong_layer_fails_the_golden_test``). Every golden test runs on the float64 kernel
paths (default and one thread; oneDNN has no float64 kernels, so "oneDNN off" would repeat the default run:
``tests/kernel_paths.py``, checked by ``tests/foundation/test_kernel_paths.py``).
"""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from portrait_studio.errors import MissingWeightsError
from portrait_studio.models.roles import ROLES
from portrait_studio.stylize.anime import load_generator, weights_file
from portrait_studio.stylize.animegan_net import (
    NUM_PARAMETERS,
    NUM_TENSORS,
    AnimeGANGenerator,
    build_animegan_tiny,
    expected_shapes,
    generator_from_state_dict,
    read_state_dict,
    state_dict_problems,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REFERENCE = json.loads((FIXTURES / "animegan_keys.json").read_text())


GOLDEN_ATOL = 1e-9
GOLDEN_CASES = [
    ("input_24x32", "out_24x32_align", True),
    ("input_24x32", "out_24x32_scale", False),
    ("input_21x30", "out_21x30_align", True),
]


def synthetic_state(
    tensors: list[tuple[str, list[int]]], dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """Deterministic weights from a formula (no RNG): sines scaled like a sane init, per tensor kind."""
    state = {}
    for index, (name, shape) in enumerate(tensors):
        values = torch.sin(torch.arange(math.prod(shape), dtype=torch.float64) * 0.7071 + index * 1.3)
        if len(shape) == 4:
            values = values * math.sqrt(3.0 / (shape[1] * shape[2] * shape[3]))
        elif name.endswith("weight"):
            values = 1.0 + 0.1 * values
        else:
            values = 0.1 * values
        state[name] = values.reshape(shape).to(dtype)
    return state


def test_state_dict_matches_the_reference_key_for_key_and_shape_for_shape() -> None:
    ours = [[name, list(t.shape)] for name, t in AnimeGANGenerator().state_dict().items()]
    assert ours == REFERENCE["tensors"]
    assert len(ours) == REFERENCE["num_tensors"] == NUM_TENSORS == 77
    state = AnimeGANGenerator().state_dict()
    assert sum(t.numel() for t in state.values()) == REFERENCE["num_parameters"] == NUM_PARAMETERS == 2_143_552
    assert {t.dtype for t in state.values()} == {torch.float32}
    # No buffers beside parameters (GroupNorm has no running stats), so the file is exactly the parameters.
    assert len(list(AnimeGANGenerator().buffers())) == 0


def test_every_norm_is_a_one_group_groupnorm_and_blocks_sit_under_layers() -> None:
    net = AnimeGANGenerator()
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.normalization.GroupNorm)]
    assert len(norms) == 24 and all(m.num_groups == 1 for m in norms)
    names = list(expected_shapes())
    assert "block_c.1.layers.1.1.bias" in names  # the depthwise conv, the only conv with a bias
    assert sum(1 for n in names if n.endswith(".bias") and len(expected_shapes()[n]) == 1) == 24 + 4


def float64_generator(align_corners: bool) -> AnimeGANGenerator:
    state = synthetic_state(REFERENCE["tensors"], dtype=torch.float64)
    return generator_from_state_dict(state, align_corners=align_corners, dtype=torch.float64)


def assert_matches_golden(net: AnimeGANGenerator, input_key: str, output_key: str) -> None:
    with np.load(FIXTURES / "animegan_golden.npz") as golden:
        assert golden[input_key].dtype == golden[output_key].dtype == np.float64
        with torch.inference_mode():
            out = net(torch.from_numpy(golden[input_key])).numpy()
        assert out.shape == golden[output_key].shape
        np.testing.assert_allclose(out, golden[output_key], rtol=0, atol=GOLDEN_ATOL)
    assert out.std() > 0.1  # the golden numbers are not saturated or constant


@pytest.mark.parametrize(("input_key", "output_key", "align_corners"), GOLDEN_CASES)
def test_same_output_as_the_reference_with_the_same_weights(input_key: str, output_key: str, align_corners: bool,
                                                           float64_kernel_path: str) -> None:
    assert_matches_golden(float64_generator(align_corners), input_key, output_key)


def _norm_per_channel(net: AnimeGANGenerator) -> None:
    """One-group GroupNorm (normalise over C, H, W) swapped for a per-channel (instance) norm."""
    unit = net.block_c[0]
    norm = torch.nn.GroupNorm(unit[2].num_channels, unit[2].num_channels).to(torch.float64)
    norm.load_state_dict(unit[2].state_dict())
    unit[2] = norm


def _zero_padding(net: AnimeGANGenerator) -> None:
    """The last 7x7 unit pads with zeros instead of reflecting."""
    net.block_e[2][0] = torch.nn.ZeroPad2d(3)


def _transposed_weight(net: AnimeGANGenerator) -> None:
    """A square 3x3 conv whose weight was read with input and output channels swapped."""
    conv = net.block_d[0][1]
    conv.weight.data = conv.weight.data.transpose(0, 1).contiguous()


@pytest.mark.parametrize("break_one_layer", [_norm_per_channel, _zero_padding, _transposed_weight])
def test_one_wrong_layer_fails_the_golden_test(break_one_layer) -> None:
    input_key, output_key, align_corners = GOLDEN_CASES[0]
    net = float64_generator(align_corners)
    assert_matches_golden(net, input_key, output_key)
    break_one_layer(net)
    with pytest.raises(AssertionError) as failure:
        assert_matches_golden(net, input_key, output_key)
    # not a near miss: the broken layer is off by orders of magnitude more than the tolerance
    worst = float(str(failure.value).split("Max absolute difference among violations: ")[1].split()[0])
    assert worst > 1e3 * GOLDEN_ATOL


def test_tiny_builder_writes_a_real_size_plain_state_dict_under_the_published_name(tmp_path: Path) -> None:
    role = ROLES["animegan_paprika"]
    build_animegan_tiny(tmp_path, role)
    path = tmp_path / "paprika.pt"
    assert path.is_file() and 8_000_000 < path.stat().st_size < 9_500_000
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert list(raw) == list(expected_shapes()) and state_dict_problems(raw) == []
    net = load_generator(path, role.name)
    assert torch.equal(net.state_dict()["out_layer.0.weight"], raw["out_layer.0.weight"])


def test_a_safetensors_conversion_is_preferred_and_loads_the_same(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    build_animegan_tiny(tmp_path, ROLES["animegan_face_paint_512_v2"])
    pt = tmp_path / "face_paint_512_v2.pt"
    assert weights_file(pt) == pt
    state = read_state_dict(pt)
    save_file(state, str(pt.with_suffix(".safetensors")))
    assert weights_file(pt) == pt.with_suffix(".safetensors")
    loaded = load_generator(weights_file(pt), "animegan_face_paint_512_v2").state_dict()
    assert all(torch.equal(loaded[name], state[name]) for name in state)


def test_wrong_layout_is_a_missing_weights_error_naming_the_tensors(tmp_path: Path) -> None:
    state = {name: torch.zeros(shape) for name, shape in expected_shapes().items()}
    state["block_e.2.1.weight"] = torch.zeros(16, 64, 7, 7)
    del state["out_layer.0.weight"]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "face_paint_512_v2.pt"
    torch.save(state, path)
    with pytest.raises(MissingWeightsError) as err:
        load_generator(path, "animegan_face_paint_512_v2")
    message = str(err.value)
    assert "missing out_layer.0.weight" in message and "unexpected extra.weight" in message
    assert "block_e.2.1.weight has shape (16, 64, 7, 7)" in message
    assert "download --roles animegan_face_paint_512_v2" in message


class _Boom:
    def __reduce__(self):
        return (Path.touch, (Path(_Boom.target),))


def test_damaged_or_hostile_files_are_rejected_without_running_code(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a zip or a pickle")
    with pytest.raises(MissingWeightsError, match="cannot read it as AnimeGANv2 weights"):
        load_generator(garbage, "animegan_paprika")

    _Boom.target = str(tmp_path / "pwned")
    hostile = tmp_path / "hostile.pt"
    torch.save({"block_a.0.1.weight": _Boom()}, hostile, pickle_module=pickle)
    with pytest.raises(MissingWeightsError, match="cannot read it"):
        load_generator(hostile, "animegan_paprika")
    assert not (tmp_path / "pwned").exists()

    not_tensors = tmp_path / "numbers.pt"
    torch.save({"epoch": 3}, not_tensors)
    with pytest.raises(MissingWeightsError, match="plain state dict of tensors"):
        load_generator(not_tensors, "animegan_paprika")
