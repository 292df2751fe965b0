from __future__ import annotations

import pytest
import torch

from portrait_studio.errors import InputError
from portrait_studio.likeness.merge import (
    ValidationScore,
    best_per_checkpoint,
    merge_checkpoints,
    merge_state_dicts,
)


def scores(table: dict[int, list[float]]) -> list[ValidationScore]:
    return [ValidationScore(step, i, s) for step, values in table.items() for i, s in enumerate(values)]


def test_weights_count_the_checkpoints_behind_the_top_k_images() -> None:
    table = {100: [0.9, 0.1, 0.2], 200: [0.8, 0.7, 0.3], 300: [0.85, 0.05, 0.0]}
    plan = merge_checkpoints(scores(table), top_k=4)
    # top 4: 0.9 (100), 0.85 (300), 0.8 (200), 0.7 (200)
    assert plan.weights == {100: 0.25, 200: 0.5, 300: 0.25}
    assert plan.best == ValidationScore(100, 0, 0.9)
    assert [p.score for p in plan.picked] == [0.9, 0.85, 0.8, 0.7]
    assert sum(plan.weights.values()) == pytest.approx(1.0)


def test_no_faces_anywhere_picks_the_latest_checkpoints() -> None:
    table = {100: [0.0, 0.0, 0.0, 0.0], 200: [0.0] * 4, 300: [0.0] * 4}
    plan = merge_checkpoints(scores(table), top_k=6)
    assert plan.weights == {200: pytest.approx(2 / 6), 300: pytest.approx(4 / 6)}
    assert plan.best == ValidationScore(300, 0, 0.0)
    # Deterministic whatever order the scores arrive in.
    assert merge_checkpoints(list(reversed(scores(table))), top_k=6) == plan


def test_ties_go_to_the_later_checkpoint_and_nan_counts_as_no_face() -> None:
    plan = merge_checkpoints(scores({100: [0.5, float("nan")], 200: [0.5, 0.0]}), top_k=1)
    assert plan.weights == {200: 1.0}
    assert best_per_checkpoint(scores({100: [0.5, float("nan")], 200: [0.2]})) == {100: 0.5, 200: 0.2}


def test_top_k_larger_than_the_image_count_uses_all() -> None:
    plan = merge_checkpoints(scores({10: [0.3], 20: [0.6]}), top_k=10)
    assert plan.weights == {10: 0.5, 20: 0.5}


def test_empty_or_bad_inputs_raise() -> None:
    with pytest.raises(InputError, match="no checkpoint"):
        merge_checkpoints([], top_k=3)
    with pytest.raises(InputError, match="top_k"):
        merge_checkpoints(scores({1: [0.1]}), top_k=0)


def test_state_dicts_are_averaged_by_weight() -> None:
    a = {"unet.x.lora.down.weight": torch.full((2, 3), 1.0), "unet.x.lora.up.weight": torch.zeros(3, 2)}
    b = {"unet.x.lora.down.weight": torch.full((2, 3), 4.0), "unet.x.lora.up.weight": torch.ones(3, 2)}
    merged = merge_state_dicts([(a, 2 / 3), (b, 1 / 3)])
    assert torch.allclose(merged["unet.x.lora.down.weight"], torch.full((2, 3), 2.0))
    assert torch.allclose(merged["unet.x.lora.up.weight"], torch.full((3, 2), 1 / 3))
    half = {k: v.half() for k, v in a.items()}
    assert merge_state_dicts([(half, 1.0)])["unet.x.lora.down.weight"].dtype == torch.float16


def test_mismatched_checkpoints_are_refused() -> None:
    a = {"k": torch.zeros(2, 2)}
    with pytest.raises(InputError, match="do not match"):
        merge_state_dicts([(a, 0.5), ({"k": torch.zeros(3, 2)}, 0.5)])
    with pytest.raises(InputError, match="do not match"):
        merge_state_dicts([(a, 0.5), ({"k": torch.zeros(2, 2), "j": torch.zeros(1)}, 0.5)])
