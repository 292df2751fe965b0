"""What a Stylize request asks for, checked once, and what it returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from portrait_studio.errors import InputError
from portrait_studio.stylize.generate import GeneratedImage, GenerateRequest

DEFAULT_STEPS = 25
DEFAULT_GUIDANCE = 7.0
DEFAULT_SAMPLER = "DPM++ 2M Karras"
CONTROLS = ("canny", "openpose", "canny+openpose", "none")
MAX_TEMPLATE_PIXELS = 4096 * 4096


@dataclass
class StylizeRequest:
    """One Stylize job. Either ``prompt`` or ``preset`` (or both: the prompt is then added to the preset's).

    ``None`` for steps, guidance, sampler, width and height means "the preset's value, else the default".
    ``template`` switches to template mode: its face is repainted with the likeness, ``denoise`` controls how
    much (0 keeps the template, 1 repaints freely); the output has the template's size.
    ``restore`` is the GFPGAN strength in [0, 1] (0 = off). ``best_of`` ranks the ``n`` images by face
    similarity to the likeness reference, best first. ``face_strength`` is the face adapter's (IP-Adapter)
    strength: ``None`` means 0.7 for an instant likeness and off for a trained one; with a trained likeness a
    value above 0 adds the adapter on the likeness' own reference face (LoRA + adapter).
    """

    prompt: str = ""
    preset: str | None = None
    negative_prompt: str = ""
    likeness: str | None = None
    likeness_weight: float = 0.9
    face_strength: float | None = None
    style_loras: list[tuple[str, float]] = field(default_factory=list)
    template: Image.Image | None = None
    denoise: float = 0.6
    control: str = "canny"
    n: int = 1
    best_of: bool = False
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    guidance: float | None = None
    sampler: str | None = None
    restore: float = 0.0

    def check(self) -> None:
        """Checks that need neither models nor files (the numeric ones run in :func:`build_generation`)."""
        if not (self.prompt and self.prompt.strip()) and not self.preset:
            raise InputError("Choose a style preset or write a prompt.")
        if self.likeness is not None and not str(self.likeness).strip():
            self.likeness = None
        _finite_between("Likeness weight", self.likeness_weight, 0.0, 2.0)
        if self.face_strength is not None:
            _finite_between("Face strength", self.face_strength, 0.0, 2.0)
        _finite_between("Denoise", self.denoise, 0.05, 1.0)
        _finite_between("Face restoration strength", self.restore, 0.0, 1.0)
        for name, weight in self.style_loras:
            if not str(name).strip():
                raise InputError("A style LoRA was chosen without a name.")
            _finite_between(f"Weight of style LoRA '{name}'", weight, -2.0, 2.0)
        if self.control not in CONTROLS:
            raise InputError(f"Unknown template control '{self.control}'. Choose one of: {', '.join(CONTROLS)}.")
        if self.template is not None:
            if not isinstance(self.template, Image.Image):
                raise InputError("The template must be an image.")
            width, height = self.template.size
            if min(width, height) < 64 or width * height > MAX_TEMPLATE_PIXELS:
                raise InputError(
                    f"The template is {width}x{height} px; use a photo between 64 px (short side) and 16 megapixels."
                )
        if self.best_of and not self.likeness:
            raise InputError("Best of N ranks images by how much they look like you: choose a likeness first.")


def _finite_between(label: str, value: Any, low: float, high: float) -> None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{label} must be a number, got {value!r}.") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise InputError(f"{label} must be between {low:g} and {high:g}, got {value!r}.")


def compose_prompt(user_prompt: str, preset_prompt: str | None, subject: str | None) -> str:
    """The final prompt: the preset's recipe (with its subject) plus the user's words, likeness in front.

    A user prompt may place the likeness itself with ``{subject}``; otherwise the subject leads the prompt,
    because the trigger word must be in it for the likeness to show.
    """
    user = (user_prompt or "").strip()
    if preset_prompt:
        return f"{preset_prompt}, {user.replace('{subject}', subject or 'a person')}" if user else preset_prompt
    if "{subject}" in user:
        return user.replace("{subject}", subject or "a person")
    return f"{subject}, {user}" if subject else user


def build_generation(
    request: StylizeRequest, preset: Any, subject: str | None, default_size: int
) -> GenerateRequest:
    """Merge request, preset and likeness into a validated :class:`GenerateRequest`."""
    preset_prompt = preset.render_prompt(subject) if preset is not None else None
    negative = ", ".join(p for p in ((preset.negative_prompt if preset else ""), request.negative_prompt.strip()) if p)
    width, height = preset.size_for(default_size) if preset is not None else (default_size, default_size)
    guidance = preset.guidance if preset else DEFAULT_GUIDANCE
    return GenerateRequest(
        prompt=compose_prompt(request.prompt, preset_prompt, subject),
        negative_prompt=negative,
        seed=request.seed,
        steps=request.steps if request.steps is not None else (preset.steps if preset else DEFAULT_STEPS),
        guidance=request.guidance if request.guidance is not None else guidance,
        width=request.width or width,
        height=request.height or height,
        n=request.n,
        sampler=request.sampler or (preset.sampler if preset else DEFAULT_SAMPLER),
    ).validate(default_size)


@dataclass
class StylizeResult:
    images: list[GeneratedImage]
    random_weights: bool
    warnings: list[str] = field(default_factory=list)
    cancelled: bool = False  # stopped by a cancel: ``images`` are the ones finished before it
