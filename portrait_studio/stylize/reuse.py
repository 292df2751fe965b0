"""Reuse a result's settings (A1111's "PNG Info → Send to txt2img", Fooocus's metadata): every Stylize PNG
carries the settings that made it (``service._describe``); this reads them back into a request.

Effective values are stored (the steps, size, sampler and guidance the preset resolved to), so a reused
request asks for them explicitly and, with the same seed and weights, makes the same pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portrait_studio.errors import InputError
from portrait_studio.stylize.generate import MAX_SEED
from portrait_studio.stylize.request import StylizeRequest


@dataclass(frozen=True)
class ReusableSettings:
    """A result's settings as the Stylize form shows them."""

    prompt: str
    preset: str
    negative_prompt: str
    likeness: str  # slug, "" for none
    likeness_weight: float | None
    face_strength: float | None
    style_loras: list[tuple[str, float]]
    seed: int
    steps: int
    guidance: float
    width: int
    height: int
    sampler: str
    restore: float
    notes: list[str] = field(default_factory=list)

    def request(self, seed: int | None = None) -> StylizeRequest:
        """A one-image request with these settings (``seed`` overrides the stored one)."""
        return StylizeRequest(
            prompt=self.prompt, preset=self.preset or None, negative_prompt=self.negative_prompt,
            likeness=self.likeness or None,
            likeness_weight=0.9 if self.likeness_weight is None else self.likeness_weight,
            face_strength=self.face_strength, style_loras=list(self.style_loras), n=1,
            seed=self.seed if seed is None else seed, steps=self.steps, guidance=self.guidance,
            width=self.width, height=self.height, sampler=self.sampler, restore=self.restore,
        )


def settings_from_metadata(metadata: dict[str, Any], source: str = "this image") -> ReusableSettings:
    """The form values of a result's stored settings; InputError when they are not Portrait Studio's."""
    if not isinstance(metadata, dict) or "seed" not in metadata or "steps" not in metadata:
        raise InputError(f"{source} carries no Portrait Studio settings: only images made in Stylize can be reused.")
    asked = metadata.get("request") if isinstance(metadata.get("request"), dict) else {}
    notes = []
    if "request" not in metadata:
        notes.append("Made by an older version: the full prompt (preset included) was put in the prompt box.")
    if asked.get("template"):
        notes.append("It was made from a template photo: choose the template again to repaint the same photo.")
    prompt = str(asked.get("prompt", metadata.get("prompt", "")) if asked else metadata.get("prompt", ""))
    negative = str(asked.get("negative_prompt", "") if asked else metadata.get("negative_prompt", ""))
    styles = []
    for entry in metadata.get("style_loras") or []:
        if isinstance(entry, (list, tuple)) and len(entry) == 2:
            styles.append((str(entry[0]), _number(entry[1], "style LoRA weight", -2, 2)))
    return ReusableSettings(
        prompt=prompt, preset=str(metadata.get("preset") or "") if asked else "",
        negative_prompt=negative, likeness=str(asked.get("likeness") or ""),
        likeness_weight=_optional(metadata.get("likeness_weight"), "likeness weight", 0, 2),
        face_strength=_optional(metadata.get("face_strength"), "face strength", 0, 2),
        style_loras=styles, seed=int(_number(metadata.get("seed"), "seed", 0, MAX_SEED)),
        steps=int(_number(metadata.get("steps"), "steps", 1, 150)),
        guidance=_number(metadata.get("guidance"), "guidance", 0, 30),
        width=int(_number(metadata.get("width"), "width", 8, 8192)),
        height=int(_number(metadata.get("height"), "height", 8, 8192)),
        sampler=str(metadata.get("sampler") or ""), restore=_number(metadata.get("restore", 0), "restore", 0, 1),
        notes=notes,
    )


def settings_of_file(path: Path) -> ReusableSettings:
    from portrait_studio.media.outputs import read_png_metadata

    try:
        metadata = read_png_metadata(Path(path))
    except (OSError, ValueError) as exc:
        raise InputError(f"Could not read the settings of {Path(path).name}: {exc}") from None
    return settings_from_metadata(metadata, Path(path).name)


def _number(value: Any, label: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"The stored {label} is not a number ({value!r}): this image's settings are damaged.") \
            from None
    if not math.isfinite(number) or not low <= number <= high:
        raise InputError(f"The stored {label} {value!r} is outside {low:g}–{high:g}: this image's settings are "
                         "damaged.")
    return number


def _optional(value: Any, label: str, low: float, high: float) -> float | None:
    return None if value is None else _number(value, label, low, high)
