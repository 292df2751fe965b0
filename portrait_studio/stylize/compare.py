"""Side by side: one prompt and seed with two likenesses (say the instant one and the trained one), each
image scored with the same likeness score best-of-N uses, so the two can be compared fairly."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from portrait_studio.config import Settings
from portrait_studio.errors import InputError
from portrait_studio.models.manager import ModelManager
from portrait_studio.progress import CancelToken, ProgressFn, no_progress, scaled
from portrait_studio.stylize.generate import MAX_SEED, GeneratedImage
from portrait_studio.stylize.request import StylizeRequest


def side_by_side(
    manager: ModelManager,
    request: StylizeRequest,
    settings: Settings,
    names: tuple[str, str],
    registry: Any = None,
    owner: str = "local",
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
) -> list[GeneratedImage]:
    """One image per likeness in ``names`` from ``request``'s prompt/preset and one seed, each scored.

    Each likeness uses its own defaults (the face adapter for an instant one, the LoRA for a trained one).
    """
    from portrait_studio.stylize.service import stylize

    first, second = (str(name or "").strip() for name in names)
    if not first or not second or first.casefold() == second.casefold():
        raise InputError("Choose two different likenesses to compare side by side.")
    seed = request.seed if request.seed is not None and request.seed >= 0 else random.randint(0, MAX_SEED)
    images = []
    for index, name in enumerate((first, second)):
        one = dataclasses.replace(request, likeness=name, n=1, best_of=True, seed=seed, face_strength=None)
        result = stylize(manager, one, settings, registry, owner, scaled(progress, index / 2, (index + 1) / 2), cancel)
        images.append(result.images[0])
    return images
