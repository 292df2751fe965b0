"""Choosing and merging checkpoints (EasyPhoto's rule), as pure functions.

Every checkpoint renders the same validation seeds; each image gets a face-similarity score. The
final LoRA is the average of the checkpoints behind the top-k images, each checkpoint weighted by how
many of those images it produced. Ties (random-weight models never draw faces, so everything scores 0)
go to the later checkpoint, then the lower seed index, so the choice is always deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from portrait_studio.errors import InputError


@dataclass(frozen=True)
class ValidationScore:
    step: int
    index: int
    score: float


@dataclass(frozen=True)
class MergePlan:
    weights: dict[int, float]  # checkpoint step -> weight; weights sum to 1
    picked: tuple[ValidationScore, ...]  # the top-k images, best first
    best: ValidationScore


def _clean(score: float) -> float:
    return score if isinstance(score, (int, float)) and math.isfinite(score) else 0.0


def rank_validation(scores: Sequence[ValidationScore]) -> list[ValidationScore]:
    """Best first: higher score, then later step, then lower seed index."""
    return sorted(scores, key=lambda s: (-_clean(s.score), -s.step, s.index))


def merge_checkpoints(scores: Sequence[ValidationScore], top_k: int) -> MergePlan:
    """Weights per checkpoint step from the ``top_k`` best validation images."""
    if not scores:
        raise InputError("No validation scores to choose checkpoints from: training wrote no checkpoint.")
    if top_k < 1:
        raise InputError(f"top_k must be at least 1, got {top_k}.")
    picked = rank_validation(scores)[:top_k]
    counts: dict[int, int] = {}
    for item in picked:
        counts[item.step] = counts.get(item.step, 0) + 1
    weights = {step: counts[step] / len(picked) for step in sorted(counts)}
    return MergePlan(weights=weights, picked=tuple(picked), best=picked[0])


def best_per_checkpoint(scores: Sequence[ValidationScore]) -> dict[int, float]:
    """Highest similarity reached by each checkpoint (for the similarity-per-checkpoint plot)."""
    best: dict[int, float] = {}
    for item in scores:
        best[item.step] = max(best.get(item.step, 0.0), _clean(item.score))
    return dict(sorted(best.items()))


def merge_state_dicts(weighted: Sequence[tuple[Mapping[str, torch.Tensor], float]]) -> dict[str, torch.Tensor]:
    """Key-wise weighted average of LoRA state dicts with identical keys and shapes.

    Averaging the down and up matrices separately is what EasyPhoto does; checkpoints of one run
    stay close, so the product of the averages is close to the average of the products.
    """
    if not weighted:
        raise InputError("Nothing to merge: no checkpoint was chosen.")
    total = sum(w for _, w in weighted)
    if total <= 0:
        raise InputError("Checkpoint merge weights must add up to a positive number.")
    first = weighted[0][0]
    merged: dict[str, torch.Tensor] = {}
    for key, tensor in first.items():
        acc = torch.zeros_like(tensor, dtype=torch.float32)
        for state, weight in weighted:
            if key not in state or state[key].shape != tensor.shape:
                raise InputError(f"Checkpoints do not match at '{key}': they come from different trainings.")
            acc += state[key].float() * (weight / total)
        merged[key] = acc.to(tensor.dtype)
    for state, _ in weighted[1:]:
        extra = set(state) - set(first)
        if extra:
            raise InputError(f"Checkpoints do not match: '{sorted(extra)[0]}' is in only some of them.")
    return merged
