"""Likeness and style LoRAs for one Stylize request: look them up, check they fit the base model, list files.

A LoRA only makes sense on the base model it was trained on: a likeness trained on another model is
refused with a message naming both. Imported style LoRAs carry whatever base name their author wrote (often
none), so they are only refused when that name clearly belongs to another model family (SDXL, SD2, ...);
their tensor shapes were already checked against the base when they were imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portrait_studio.errors import InputError, MissingWeightsError
from portrait_studio.models.locator import download_command, is_random_weights

if TYPE_CHECKING:
    from portrait_studio.models.manager import ModelInfo, ModelManager
    from portrait_studio.stylize.presets import StylePreset

# Published copies of the same SD1.5 weights under different hub ids.
SD15_ALIASES = frozenset({
    "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "runwayml/stable-diffusion-v1-5",
    "benjamin-paine/stable-diffusion-v1-5",
})
_OTHER_FAMILY = re.compile(
    r"(sdxl|sd_xl|-xl\b|\bxl\b|sd-?2|stable-diffusion-2|\bv2[-_.]|sd3|flux|pixart|kandinsky)", re.I
)
MAX_STYLE_LORAS = 4


@dataclass(frozen=True)
class Likeness:
    """A likeness ready to use: its LoRA file (trained) or face encodings (instant), the words that call it
    up, and its reference face."""

    name: str
    slug: str
    lora_path: Path | None
    trigger: str
    class_word: str
    reference_path: Path | None
    random_weights: bool
    instant_path: Path | None = None
    identity_path: Path | None = None  # face-model identity centre (the likeness score), when stored
    face_backend: str = ""

    @property
    def is_instant(self) -> bool:
        return self.instant_path is not None

    @property
    def subject(self) -> str:
        """What replaces ``{subject}`` in a prompt: "<trigger> <class word>" (e.g. "pszkvq woman"); an instant
        likeness has no trigger (the adapter carries the face), so "a person"."""
        if self.is_instant:
            return f"a {self.class_word or 'person'}"
        return " ".join(part for part in (self.trigger, self.class_word) if part) or self.name


@dataclass(frozen=True)
class LoraUse:
    """One LoRA file applied with a weight, and how to describe it in the image's settings."""

    path: Path
    weight: float
    label: str
    random_weights: bool = False


def _model_id(text: str) -> str:
    """A comparable id: no revision, no trailing slash, lower case, known SD1.5 mirrors folded together."""
    value = str(text).strip().rstrip("/")
    if "@" in value and "/" in value.rsplit("@", 1)[0]:
        value = value.rsplit("@", 1)[0]
    value = value.lower()
    return "sd15" if value in SD15_ALIASES else value


def check_same_base(record: Any, info: ModelInfo) -> None:
    """Refuse a likeness trained on a different base model than the one this app runs."""
    trained_on = str(getattr(record, "base_model", "") or "")
    if not trained_on:
        return  # nothing recorded: an old or hand-made entry; shapes were checked at import
    if getattr(record, "source", "trained") == "trained":
        if _model_id(trained_on) != _model_id(info.base_id):
            raise InputError(
                f"The likeness '{record.name}' was trained on the base model '{trained_on}', but this app runs "
                f"'{info.base_id}'. A LoRA only works on the model it was trained on: switch the base model "
                f"back, or train the likeness again on this one."
            )
    elif _OTHER_FAMILY.search(trained_on) and not _OTHER_FAMILY.search(info.base_id):
        raise InputError(
            f"The LoRA '{record.name}' was made for '{trained_on}', a different model family than '{info.base_id}'. "
            "Use a LoRA made for Stable Diffusion 1.5."
        )


def _registry(settings: Any, registry: Any) -> Any:
    if registry is not None:
        return registry
    from portrait_studio.registry import LoraRegistry

    return LoraRegistry(settings.registry_dir)


def resolve_likeness(settings: Any, registry: Any, owner: str, name: str, info: ModelInfo) -> Likeness:
    record = _registry(settings, registry).get(owner, name)
    check_same_base(record, info)
    if getattr(record, "is_instant", False):
        return Likeness(
            name=record.name, slug=record.slug, lora_path=None, trigger="", class_word=record.class_word,
            reference_path=record.reference_path, random_weights=bool(record.random_weights),
            instant_path=record.instant_path, identity_path=record.identity_path,
            face_backend=str(record.extra.get("face_backend", "")),
        )
    if not record.trigger:
        raise InputError(
            f"'{record.name}' has no trigger word, so it cannot be used as a likeness. Use it as a style LoRA, "
            "or pick a likeness you trained."
        )
    return Likeness(
        name=record.name, slug=record.slug, lora_path=record.lora_path, trigger=record.trigger,
        class_word=record.class_word, reference_path=record.reference_path,
        random_weights=bool(record.random_weights), identity_path=getattr(record, "identity_path", None),
        face_backend=str(getattr(record, "extra", {}).get("face_backend", "")),
    )


def resolve_style_loras(
    settings: Any,
    registry: Any,
    owner: str,
    manager: ModelManager,
    info: ModelInfo,
    requested: list[tuple[str, float]],
    preset: StylePreset | None,
) -> list[LoraUse]:
    """Files of the user's style LoRAs (Library names) plus the preset's own style LoRA, if any."""
    uses: list[LoraUse] = []
    wanted = list(requested)
    if preset is not None and preset.style_lora is not None:
        style = preset.style_lora
        if style.role:
            path = manager.locator.path(style.role)
            if not Path(path).is_file():
                raise MissingWeightsError(style.role, str(path), download_command(style.role), "LoRA file missing")
            uses.append(LoraUse(Path(path), style.weight, f"preset {preset.id}: {style.role}", is_random_weights(path)))
        elif style.name and style.name.casefold() not in {n.casefold() for n, _ in wanted}:
            wanted.append((style.name, style.weight))
    if len(wanted) > MAX_STYLE_LORAS:
        raise InputError(f"Use at most {MAX_STYLE_LORAS} style LoRAs at once; {len(wanted)} were chosen.")
    if wanted:
        store = _registry(settings, registry)
        for name, weight in wanted:
            record = store.get(owner, name)
            if getattr(record, "is_instant", False):
                raise InputError(
                    f"'{record.name}' is an instant likeness, not a style LoRA: choose it as the likeness instead."
                )
            check_same_base(record, info)
            uses.append(LoraUse(record.lora_path, float(weight), record.name, bool(record.random_weights)))
    return uses
