"""Choosing the training set from analysed photos: quality gates, identity, score, top k, reference.

score = similarity x quality x angle (EasyPhoto's recipe, with quality added so a blurry copy ranks below
its sharp twin). The reference face is the most frontal of the kept faces that are also sharp and
close to the identity centre.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from portrait_studio.faces.entry import FaceEntry
from portrait_studio.faces.identity import identity_centre
from portrait_studio.faces.quality import BAD_EXPOSURE, VERY_BLURRY
from portrait_studio.faces.types import FaceBackend


@dataclass
class Selection:
    kept: list[FaceEntry]  # best first
    reference: FaceEntry | None
    centre: np.ndarray | None  # identity centre of the kept faces (unit norm)


def _quality_gate(entry: FaceEntry) -> str | None:
    scores = entry.scores
    if scores is None:
        return None
    if scores.sharpness < VERY_BLURRY:
        return f"very blurry (sharpness {scores.sharpness:.2f}): use a sharper photo"
    if scores.exposure < BAD_EXPOSURE:
        light = "too dark" if scores.brightness < 125 else "overexposed"
        return f"{light} (exposure {scores.exposure:.2f}): use a photo in even light"
    return None


def select_faces(entries: Sequence[FaceEntry], backend: FaceBackend, top_k: int) -> Selection:
    """Decide every pending entry (kept or rejected with a reason); returns the kept ones best first."""
    for entry in entries:
        if entry.is_candidate and (reason := _quality_gate(entry)):
            entry.reject(reason)
    candidates = [e for e in entries if e.is_candidate and e.embedding is not None]
    if not candidates:
        return Selection([], None, None)
    identity = identity_centre(
        [e.embedding for e in candidates], backend.similarity, backend.same_person_threshold
    )
    members: list[FaceEntry] = []
    for entry, similarity, member in zip(candidates, identity.similarities, identity.members, strict=True):
        entry.similarity = similarity
        if member:
            members.append(entry)
        else:
            entry.reject(f"looks like a different person (similarity {similarity:.2f})")
    for entry in members:
        entry.score = float(entry.similarity * entry.quality * entry.angle)
    members.sort(key=lambda e: (-e.score, e.index))
    for rank, entry in enumerate(members, start=1):
        entry.rank = rank
        if rank <= top_k:
            entry.keep(f"kept: rank {rank} of {len(members)}")
        else:
            entry.reject(f"not among the best {top_k} (rank {rank}, score {entry.score:.2f})")
    kept = members[:top_k]
    if not kept:
        return Selection([], None, None)
    centre = identity_centre(
        [e.embedding for e in kept], backend.similarity, backend.same_person_threshold
    ).centre
    return Selection(kept, choose_reference(kept), centre)


def choose_reference(kept: Sequence[FaceEntry]) -> FaceEntry:
    """Most frontal among the faces that are both close to the identity and sharp.

    "Close" and "sharp" are relative to the set (within 0.1 of the best similarity, at least 80% of the
    best quality) so that a set of all-soft phone photos still gets a reference.
    """
    best_similarity = max(e.similarity for e in kept)
    best_quality = max(e.quality for e in kept)
    eligible = [e for e in kept if e.similarity >= best_similarity - 0.1 and e.quality >= 0.8 * best_quality]
    pool = eligible or list(kept)
    return max(pool, key=lambda e: (round(e.angle, 2), e.quality * e.similarity, -e.index))
