"""Our AnimeGANv2 generator against numbers taken from the reference definition.

``tests/fixtures/animegan_keys.json`` lists the reference state dict (names, shapes, order) and
``animegan_golden.npz`` holds the reference outputs for fixed inputs with the synthetic weights below;
both were generated once outside the repository from bryandlee/animegan2-pytorch's model.py.
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


def synthetic_state(tensors: list[tuple[str, list[int]]]) -> dict[str, torch.Tensor]:
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
        state[name] = values.reshape(shape).to(torch.float32)
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


@pytest.mark.parametrize(
    ("input_key", "output_key", "align_corners"),
    [
        ("input_24x32", "out_24x32_align", True),
        ("input_24x32", "out_24x32_scale", False),
        ("input_21x30", "out_21x30_align", True),
    ],
)
def test_same_output_as_the_reference_with_the_same_weights(input_key: str, output_key: str,
                                                           align_corners: bool) -> None:
    golden = np.load(FIXTURES / "animegan_golden.npz")
    net = generator_from_state_dict(synthetic_state(REFERENCE["tensors"]), align_corners=align_corners)
    with torch.inference_mode():
        out = net(torch.from_numpy(golden[input_key])).numpy()
    assert out.shape == golden[output_key].shape
    np.testing.assert_allclose(out, golden[output_key], rtol=0, atol=1e-5)
    assert out.std() > 0.1  # the golden numbers are not saturated or constant


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
