"""Whose photos are these? A robust identity centre for a set of face embeddings.

EasyPhoto compares every face with the set's mean embedding; a plain mean is pulled towards whoever else
is in the set (a friend, a celebrity). We start from the face that agrees with the most others (the
medoid), average the faces that match it, then drop outliers and re-average until nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

SimilarityFn = Callable[[np.ndarray, np.ndarray], float]
# A face this far below the set's typical similarity is an outlier even when above the threshold.
_MAD_FACTOR = 4.0
_MIN_SPREAD = 0.04


@dataclass
class IdentityCentre:
    centre: np.ndarray  # unit-norm float32
    similarities: list[float]  # each face vs the centre, calibrated [0, 1]
    members: list[bool]  # faces that are the same person as the centre


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector)) or 1.0
    return (vector / norm).astype(np.float32)


def identity_centre(
    embeddings: Sequence[np.ndarray], similarity: SimilarityFn, threshold: float, rounds: int = 4
) -> IdentityCentre:
    """The identity most of ``embeddings`` share; ``threshold`` is the backend's same-person similarity."""
    if not embeddings:
        raise ValueError("identity_centre needs at least one embedding")
    stack = np.stack([np.asarray(e, dtype=np.float32) for e in embeddings])
    count = len(stack)
    pairwise = np.array([[similarity(stack[i], stack[j]) for j in range(count)] for i in range(count)])
    neighbours = (pairwise >= threshold).sum(1)
    # Most neighbours first; among equals, the one closest to them on average.
    medoid = max(range(count), key=lambda i: (neighbours[i], pairwise[i].mean()))
    members = pairwise[medoid] >= threshold
    centre = _unit(stack[members].mean(0))
    for _ in range(rounds):
        sims = np.array([similarity(centre, e) for e in stack])
        inlier_sims = sims[members] if members.any() else sims
        median = float(np.median(inlier_sims))
        spread = max(float(np.median(np.abs(inlier_sims - median))), _MIN_SPREAD)
        new_members = (sims >= threshold) & (sims >= median - _MAD_FACTOR * spread)
        if not new_members.any():
            new_members = sims >= sims.max()
        if np.array_equal(new_members, members):
            break
        members = new_members
        centre = _unit(stack[members].mean(0))
    sims = [float(similarity(centre, e)) for e in stack]
    return IdentityCentre(centre, sims, [bool(m) for m in members])
