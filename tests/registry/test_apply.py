"""loras_applied: LoRAs change the output inside the block and leave the weights bit-identical after it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from portrait_studio.errors import InputError
from portrait_studio.registry import loras_applied
from tests.registry.lora_test_files import lora_tensors, pipeline_image, write_diffusers, write_kohya


def _snapshot(pipe) -> dict[str, dict[str, torch.Tensor]]:  # noqa: ANN001
    return {
        name: {k: v.detach().clone() for k, v in getattr(pipe, name).state_dict().items()}
        for name in ("unet", "text_encoder")
    }


def _assert_identical(pipe, snapshot: dict) -> None:  # noqa: ANN001
    for name, before in snapshot.items():
        after = getattr(pipe, name).state_dict()
        assert after.keys() == before.keys(), f"{name} gained or lost tensors"
        assert all(torch.equal(after[k], v) for k, v in before.items()), f"{name} weights changed"
    assert not any(pipe.get_list_adapters().values())


@pytest.fixture()
def two_loras(tmp_path: Path, base_shapes: dict) -> list[Path]:
    first = write_kohya(tmp_path / "a.safetensors", lora_tensors(base_shapes, seed=1, amplitude=0.6), alpha=4)
    second = write_diffusers(tmp_path / "b.safetensors", lora_tensors(base_shapes, seed=2, text_encoder=False))
    return [first, second]


def test_applied_then_unloaded_bit_identical(tiny_pipe, two_loras: list[Path]) -> None:  # noqa: ANN001
    before = _snapshot(tiny_pipe)
    plain = pipeline_image(tiny_pipe)
    with loras_applied(tiny_pipe, [(two_loras[0], 1.0), (two_loras[1], 0.5)]) as names:
        assert len(names) == 2
        assert set(tiny_pipe.get_list_adapters()["unet"]) == set(names)
        styled = pipeline_image(tiny_pipe)
    assert (styled - plain).abs().max() > 1e-3
    _assert_identical(tiny_pipe, before)
    assert torch.equal(pipeline_image(tiny_pipe), plain)


def test_unloaded_even_when_the_job_raises(tiny_pipe, two_loras: list[Path]) -> None:  # noqa: ANN001
    before = _snapshot(tiny_pipe)
    with pytest.raises(ZeroDivisionError):
        with loras_applied(tiny_pipe, [(p, 1.0) for p in two_loras]):
            raise ZeroDivisionError
    _assert_identical(tiny_pipe, before)


def test_unloaded_when_a_later_lora_is_bad(tiny_pipe, two_loras: list[Path], tmp_path: Path) -> None:  # noqa: ANN001
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"PK\x03\x04not a lora")
    before = _snapshot(tiny_pipe)
    with pytest.raises(InputError, match="zip archive"):
        with loras_applied(tiny_pipe, [(two_loras[0], 1.0), (bad, 1.0)]):
            pass
    _assert_identical(tiny_pipe, before)


def test_fused_is_exact_after_unfuse(tiny_pipe, two_loras: list[Path]) -> None:  # noqa: ANN001
    before = _snapshot(tiny_pipe)
    loras = [(two_loras[0], 0.8), (two_loras[1], 0.7)]
    with loras_applied(tiny_pipe, loras):
        unfused = pipeline_image(tiny_pipe)
    with loras_applied(tiny_pipe, loras, fuse=True):
        fused = pipeline_image(tiny_pipe)
    assert torch.allclose(fused, unfused, atol=1e-4)
    _assert_identical(tiny_pipe, before)


def test_weights_are_checked_and_empty_list_is_a_no_op(tiny_pipe, two_loras: list[Path]) -> None:  # noqa: ANN001
    before = _snapshot(tiny_pipe)
    with loras_applied(tiny_pipe, []) as names:
        assert names == []
    with pytest.raises(InputError, match="must be finite"):
        with loras_applied(tiny_pipe, [(two_loras[0], float("nan"))]):
            pass
    _assert_identical(tiny_pipe, before)


def test_pipeline_can_be_shared_with_animatediff_afterwards(tiny_pipe, two_loras: list[Path], tmp_path: Path) -> None:  # noqa: ANN001
    """The reason for apply-then-unload: from_pipe breaks on a UNet that still carries peft layers."""
    from diffusers import AnimateDiffPipeline, MotionAdapter

    from portrait_studio.models.tiny import build_motion_adapter

    build_motion_adapter(tmp_path / "motion")
    adapter = MotionAdapter.from_pretrained(tmp_path / "motion")
    with loras_applied(tiny_pipe, [(two_loras[0], 1.0)]):
        pass
    animate = AnimateDiffPipeline.from_pipe(tiny_pipe, motion_adapter=adapter)
    assert animate.unet is not tiny_pipe.unet
