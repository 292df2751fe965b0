"""What an animation request may ask for, checked once, and what it returns."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from portrait_studio.errors import InputError
from portrait_studio.models.roles import MOTION_LORAS

MAX_SEED = 2**32 - 1
INTERPOLATIONS = ("none", "blend", "flow")
MIN_FRAMES, MAX_FRAMES = 2, 64
MAX_MOTION_WEIGHT = 2.0
# Portrait -> animation: SparseCtrl RGB keyframes (default; the face stays the portrait's) or the older
# video-to-video over the portrait repeated in every frame.
PORTRAIT_MODES = ("sparsectrl", "video2video")
# The v3 motion module attends over at most 32 frames, and SparseCtrl runs without FreeNoise windows.
MAX_SPARSECTRL_FRAMES = 32
MAX_KEYFRAME_STRENGTH = 2.0


@dataclass(frozen=True)
class Likeness:
    """A likeness for one request: its LoRA file or, for an instant likeness, its face encodings (server
    side), the LoRA weight, the face adapter's strength, and what to say about it.

    ``face_strength`` None means the default (0.7) for an instant likeness and no adapter for a LoRA; a
    value above 0 adds the adapter to a trained likeness on its ``reference_path`` face.
    """

    path: Path | None
    weight: float = 0.8
    name: str = ""
    trigger: str = ""
    random_weights: bool = False
    instant_path: Path | None = None
    reference_path: Path | None = None  # the face it was trained on (a portrait to animate)
    face_strength: float | None = None

    @property
    def is_instant(self) -> bool:
        return self.instant_path is not None

    @property
    def label(self) -> str:
        return self.name or Path(self.path or self.instant_path or "likeness").parent.name

    @classmethod
    def from_record(cls, record: Any, weight: float = 0.8, face_strength: float | None = None) -> Likeness:
        """From a registry ``LoraRecord`` (a trained/imported LoRA, or an instant likeness)."""
        instant = bool(getattr(record, "is_instant", False))
        reference = getattr(record, "reference_path", None)
        return cls(
            None if instant else Path(record.lora_path), weight, str(record.name),
            str(getattr(record, "trigger", "") or ""), bool(getattr(record, "random_weights", False)),
            instant_path=Path(record.instant_path) if instant else None,
            reference_path=Path(reference) if reference else None, face_strength=face_strength,
        )

    def reference_portrait(self) -> Image.Image:
        """The likeness' reference face as an RGB image, or InputError saying what to do instead."""
        label = self.label
        if self.reference_path is None or not Path(self.reference_path).is_file():
            raise InputError(f"The likeness '{label}' has no reference face picture: upload a portrait instead.")
        with Image.open(self.reference_path) as image:
            return image.convert("RGB")


@dataclass
class AnimateRequest:
    """One animation. ``init_image`` switches to portrait-to-animation.

    Portrait modes (``portrait_mode``): ``sparsectrl`` conditions keyframes with SparseCtrl RGB, the
    portrait at ``keyframes[0]`` (default frame 0) and, when given, ``end_image`` at ``keyframes[1]``
    (default the last frame), with ``keyframe_strength`` as the conditioning scale; ``video2video``
    re-noises the portrait repeated in every frame by ``strength``.

    ``likeness`` points at a LoRA file resolved by the caller (a registry record), never at a
    client-supplied path; its trigger word is put in front of the prompt when the prompt lacks it.
    ``motions`` are camera motions with weights, e.g. ``[("zoom-in", 0.8)]``.
    """

    prompt: str
    negative_prompt: str = ""
    likeness: Likeness | None = None
    motions: list[tuple[str, float]] = field(default_factory=list)
    frames: int = 16
    fps: int = 8
    steps: int = 25
    guidance: float = 7.5
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    fast: bool = False
    init_image: Image.Image | None = None
    strength: float = 0.6
    portrait_mode: str = "sparsectrl"
    end_image: Image.Image | None = None
    keyframe_strength: float = 1.0
    keyframes: tuple[int, ...] | None = None
    interpolate: str = "none"
    low_memory: bool = True

    @property
    def mode(self) -> str:
        """``txt2vid``, ``sparsectrl`` or ``video2video``."""
        return self.portrait_mode if self.init_image is not None else "txt2vid"

    def keyframe_indices(self) -> tuple[int, ...]:
        """Where the portrait (and the end image) sit in the clip; only meaningful in SparseCtrl mode."""
        if self.keyframes:
            return tuple(int(i) for i in self.keyframes)
        return (0, self.frames - 1) if self.end_image is not None else (0,)

    def validate(self, default_size: int) -> AnimateRequest:
        """A checked copy with the seed drawn and the size filled in; InputError names the bad field."""
        if not self.prompt or not self.prompt.strip():
            raise InputError("The prompt is empty: describe the animation you want (or pick a preset).")
        if len(self.prompt) > 2000:
            raise InputError(f"The prompt has {len(self.prompt)} characters; keep it under 2000.")
        if not MIN_FRAMES <= self.frames <= MAX_FRAMES:
            raise InputError(f"Frames must be between {MIN_FRAMES} and {MAX_FRAMES}, got {self.frames}.")
        if not 1 <= self.fps <= 30:
            raise InputError(f"Frames per second must be between 1 and 30, got {self.fps}.")
        if not 1 <= self.steps <= 100:
            raise InputError(f"Steps must be between 1 and 100, got {self.steps}.")
        if not 0 <= self.guidance <= 30:
            raise InputError(f"Guidance must be between 0 and 30, got {self.guidance}.")
        if self.interpolate not in INTERPOLATIONS:
            raise InputError(f"Unknown interpolation '{self.interpolate}'. Choose one of: {', '.join(INTERPOLATIONS)}.")
        motions = _check_motions(self.motions)
        if self.init_image is None and self.end_image is not None:
            raise InputError("An end image needs a start portrait: give the portrait too (--from), or drop --to.")
        if self.init_image is not None and self.portrait_mode not in PORTRAIT_MODES:
            raise InputError(
                f"Unknown portrait mode '{self.portrait_mode}'. Choose one of: {', '.join(PORTRAIT_MODES)}."
            )
        if self.mode == "sparsectrl":
            _check_sparsectrl(self, motions)
        elif self.end_image is not None:
            raise InputError("An end image works only in the sparsectrl portrait mode; drop it or switch mode.")
        if self.mode == "video2video":
            if not 0.05 <= self.strength <= 1.0:
                raise InputError(f"Strength must be between 0.05 and 1.0, got {self.strength}.")
            if int(self.steps * self.strength) < 1:
                raise InputError(
                    f"Steps x strength is below one step ({self.steps} x {self.strength}); raise either of them."
                )
        prompt = self.prompt.strip()
        if self.likeness is not None:
            label = self.likeness.label
            if not 0 <= self.likeness.weight <= 2:
                raise InputError(f"Likeness weight must be between 0 and 2, got {self.likeness.weight}.")
            strength = self.likeness.face_strength
            if strength is not None and not 0 <= strength <= 2:
                raise InputError(f"Face strength must be between 0 and 2, got {strength}.")
            if self.likeness.is_instant:
                if not Path(self.likeness.instant_path).is_file():
                    raise InputError(f"The face encodings of instant likeness '{label}' are missing; create it again.")
            elif self.likeness.path is None or not Path(self.likeness.path).is_file():
                raise InputError(f"The LoRA file of likeness '{label}' is missing; re-import or re-train it.")
            trigger = self.likeness.trigger.strip()
            if trigger and trigger.lower() not in prompt.lower():
                prompt = f"{trigger}, {prompt}"
        width = self.width or default_size
        height = self.height or default_size
        for name, value in (("width", width), ("height", height)):
            if not 32 <= value <= 1024 or value % 8:
                raise InputError(f"Video {name} must be a multiple of 8 between 32 and 1024, got {value}.")
        seed = random.randint(0, MAX_SEED) if self.seed is None or self.seed < 0 else int(self.seed)
        if seed > MAX_SEED:
            raise InputError(f"Seed must be between 0 and {MAX_SEED}, got {seed}.")
        return dataclasses.replace(
            self, prompt=prompt, negative_prompt=self.negative_prompt.strip(), motions=motions,
            seed=seed, width=width, height=height,
        )

    def describe(self) -> dict[str, Any]:
        """The settings as plain JSON-able values (for metadata), without pixels or server paths."""
        return {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "likeness": self.likeness.label if self.likeness else None,
            "likeness_kind": ("instant" if self.likeness.is_instant else "lora") if self.likeness else None,
            "likeness_weight": self.likeness.weight if self.likeness and not self.likeness.is_instant else None,
            "motions": {name: weight for name, weight in self.motions},
            "frames": self.frames,
            "fps": self.fps,
            "steps": self.steps,
            "guidance": self.guidance,
            "seed": self.seed,
            "width": self.width,
            "height": self.height,
            "fast": self.fast,
            "mode": self.mode,
            "strength": self.strength if self.mode == "video2video" else None,
            "keyframe_strength": self.keyframe_strength if self.mode == "sparsectrl" else None,
            "keyframes": list(self.keyframe_indices()) if self.mode == "sparsectrl" else None,
            "end_image": self.end_image is not None,
            "interpolate": self.interpolate,
        }


def _check_motions(motions: list[tuple[str, float]] | dict[str, float]) -> list[tuple[str, float]]:
    items = list(motions.items()) if isinstance(motions, dict) else list(motions)
    seen: set[str] = set()
    checked: list[tuple[str, float]] = []
    for name, weight in items:
        if name not in MOTION_LORAS:
            raise InputError(f"Unknown camera motion '{name}'. Choose one of: {', '.join(MOTION_LORAS)}.")
        if name in seen:
            raise InputError(f"Camera motion '{name}' is listed twice; give it once with one weight.")
        if not 0 <= float(weight) <= MAX_MOTION_WEIGHT:
            raise InputError(f"Weight of motion '{name}' must be between 0 and {MAX_MOTION_WEIGHT}, got {weight}.")
        seen.add(name)
        if float(weight) > 0:  # weight 0 means "off": do not even load it
            checked.append((name, float(weight)))
    return checked


def _check_sparsectrl(req: AnimateRequest, motions: list[tuple[str, float]]) -> None:
    if motions:
        raise InputError(
            "Camera motions belong to the v1.5.2 motion module, and SparseCtrl keyframes need v3: "
            "drop the camera motions, or use the video2video portrait mode."
        )
    if req.fast:
        raise InputError("Fast mode (Lightning) has no SparseCtrl keyframes: turn Fast off, or use video2video.")
    if req.frames > MAX_SPARSECTRL_FRAMES:
        raise InputError(
            f"SparseCtrl animates up to {MAX_SPARSECTRL_FRAMES} frames, got {req.frames}; lower the frame count."
        )
    if not 0 <= req.keyframe_strength <= MAX_KEYFRAME_STRENGTH:
        raise InputError(
            f"Keyframe strength must be between 0 and {MAX_KEYFRAME_STRENGTH}, got {req.keyframe_strength}."
        )
    indices = req.keyframe_indices()
    images = 2 if req.end_image is not None else 1
    if len(indices) != images:
        raise InputError(
            f"Give one keyframe index per keyframe image: {images} image(s), {len(indices)} index(es) {list(indices)}."
        )
    if any(not 0 <= i < req.frames for i in indices) or len(set(indices)) != len(indices):
        raise InputError(
            f"Keyframe indices must be distinct frames between 0 and {req.frames - 1}, got {list(indices)}."
        )


def parse_keyframes(text: str) -> tuple[int, ...]:
    """``"0,15"`` -> ``(0, 15)``."""
    try:
        return tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise InputError(f"Keyframes '{text}' must be frame numbers separated by commas, like 0,15.") from None


def parse_motion(text: str) -> tuple[str, float]:
    """``"zoom-in:0.8"`` or ``"zoom-in"`` (weight 1) -> ``("zoom-in", 0.8)``."""
    name, _, raw = text.strip().partition(":")
    try:
        weight = float(raw) if raw else 1.0
    except ValueError:
        raise InputError(f"Motion '{text}': the weight after ':' must be a number, like zoom-in:0.8.") from None
    return name.strip(), weight


@dataclass
class AnimateResult:
    mp4_path: Path
    gif_path: Path
    frames_zip: Path
    frames: int
    fps: int
    seed: int
    random_weights: bool
    warnings: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
