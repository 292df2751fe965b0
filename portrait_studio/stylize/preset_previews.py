"""A preview picture per style preset (Fooocus shows style previews): made once with the base model when its
real weights are here, kept under ``<home>/previews/presets``; a labelled card otherwise.

A random-weight model's output says nothing about a style, so it is never shown as a preview: on the tiny
profile, or before the weights are downloaded, the card says why there is no picture.
The file name holds a hash of the preset and the model, so editing a preset or changing the model makes a
new preview instead of showing a stale one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from portrait_studio.config import Settings
from portrait_studio.errors import PortraitStudioError
from portrait_studio.media.cards import label_card

PREVIEW_SEED = 1234
PREVIEW_STEPS = 20
BASE_ROLE = "base"


@dataclass(frozen=True)
class PresetPreview:
    image: Image.Image
    real: bool  # False: a labelled card, not a generated picture
    note: str


def previews_dir(settings: Settings) -> Path:
    return settings.home / "previews" / "presets"


def real_base_weights(manager: Any) -> bool:
    """True when the base model's published weights are on disk (not missing, not the tiny random model)."""
    from portrait_studio.models.locator import is_random_weights

    if not manager.locator.is_available(BASE_ROLE):
        return False
    try:
        return not is_random_weights(manager.locator.path(BASE_ROLE, download=False))
    except PortraitStudioError:
        return False


def cached_preview_path(settings: Settings, preset: Any, model_id: str) -> Path:
    fields = {k: v for k, v in asdict(preset).items() if k not in ("source", "builtin")}
    digest = hashlib.sha256(json.dumps([fields, model_id, PREVIEW_SEED, PREVIEW_STEPS], sort_keys=True,
                                       default=str).encode()).hexdigest()[:16]
    return previews_dir(settings) / f"{preset.id}-{digest}.png"


def placeholder(preset: Any, reason: str) -> PresetPreview:
    card = label_card(preset.title, [preset.description, "No preview picture:", reason])
    return PresetPreview(card, False, reason)


def preset_preview(manager: Any, settings: Settings, preset_id: str, make: bool = True) -> PresetPreview:
    """The preview of ``preset_id``: the stored picture, else (``make`` and real weights) a new one, else a card."""
    from portrait_studio.stylize.presets import get_preset

    preset = get_preset(settings, preset_id)
    if not real_base_weights(manager):
        return placeholder(preset, "previews are made with the real base model, whose weights are not here "
                                   "(the tiny profile's random model would only show noise).")
    model_id = manager.sd_info(BASE_ROLE).base_id
    path = cached_preview_path(settings, preset, model_id)
    if path.is_file():
        with Image.open(path) as stored:
            return PresetPreview(stored.convert("RGB"), True, f"Preview made with {model_id}, seed {PREVIEW_SEED}.")
    if not make:
        return placeholder(preset, "not made yet.")
    try:
        image = _generate(manager, settings, preset.id)
    except PortraitStudioError as exc:
        return placeholder(preset, str(exc))
    from portrait_studio.media.outputs import save_png

    save_png(image, path, {"preset": preset.id, "model": model_id, "seed": PREVIEW_SEED, "preview": True})
    return PresetPreview(image, True, f"Preview made with {model_id}, seed {PREVIEW_SEED}.")


def _generate(manager: Any, settings: Settings, preset_id: str) -> Image.Image:
    from portrait_studio.stylize.request import StylizeRequest
    from portrait_studio.stylize.service import stylize

    request = StylizeRequest(preset=preset_id, seed=PREVIEW_SEED, steps=PREVIEW_STEPS, n=1)
    result = stylize(manager, request, settings)
    image = result.images[0].image
    image.thumbnail((384, 384))
    return image
