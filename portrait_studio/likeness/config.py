"""Training settings for a likeness LoRA, with named presets.

``Balanced`` follows EasyPhoto's published recipe (512 px, min(N*200, 800) steps, batch 1 x
grad-accum 4, lr 1e-4 constant, rank 128 / alpha 64, a LoRA on every linear layer of the UNet's
transformer blocks *and* a text-encoder LoRA, checkpoint + validation every 100 steps, final LoRA
from the top-10 validation images). ``Quick`` trades likeness for time (UNet only, rank 32);
``Max`` trains longer. Every likeness gets its own rare trigger token (:func:`pick_trigger`) and
the captions vary between a few phrasings that all carry it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from portrait_studio.errors import InputError

PRESETS = ("Quick", "Balanced", "Max")
LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("auto", "no", "fp16", "bf16")
AUTO_BOOL = ("auto", "on", "off")
_TRIGGER_RE = re.compile(r"^[a-z][a-z0-9_]{2,31}$")
_CONSONANTS = "bcdfghjklmnpqrstvwxz"


# Captions rotate between these phrasings (each sample draws one per step), so the LoRA binds the
# likeness to the trigger rather than to one sentence. ``TrainingConfig.caption`` comes first.
CAPTION_VARIANTS = (
    "a photo of {trigger} {class_word}",
    "a close-up portrait photo of {trigger} {class_word}",
    "{trigger} {class_word}, face, looking at the camera",
    "a picture of {trigger} {class_word} in natural light",
    "{trigger} {class_word}, head and shoulders, plain background",
)
GENERIC_TRIGGERS = frozenset({"ohwx", "sks", "zwx", "tok"})  # community defaults: they collide


def pick_trigger(seed_text: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """A rare trigger for a new likeness that none of ``taken`` (the owner's other likenesses) uses."""
    taken = {t.casefold() for t in taken} | GENERIC_TRIGGERS
    for attempt in range(1000):
        candidate = unique_trigger(seed_text if attempt == 0 else f"{seed_text}#{attempt}")
        if candidate not in taken:
            return candidate
    raise InputError("Could not find a free trigger word; give one explicitly.")


def unique_trigger(seed_text: str) -> str:
    """A rare, pronounceable-free token (e.g. ``pszkvq``) derived from ``seed_text``.

    Rare letter runs tokenize into pieces CLIP has little prior meaning for, so the LoRA binds the
    likeness to them; deriving it from the owner and name keeps two likenesses apart in one prompt.
    """
    digest = hashlib.sha256(seed_text.encode("utf-8")).digest()
    return "ps" + "".join(_CONSONANTS[b % len(_CONSONANTS)] for b in digest[:4])


@dataclass
class TrainingConfig:
    preset: str = "Balanced"
    steps: int = 800
    resolution: int = 512
    batch_size: int = 1
    grad_accum: int = 4
    learning_rate: float = 1e-4
    lr_schedule: str = "constant"
    rank: int = 128
    alpha: int = 64
    train_text_encoder: bool = False
    text_encoder_lr: float = 5e-5
    checkpoint_every: int = 100
    # Validation: one image per seed at every checkpoint, the same seeds every time.
    validation_seeds: tuple[int, ...] = (1234, 2345, 3456, 4567)
    validation_steps: int = 25
    validation_guidance: float = 7.0
    validation_prompt: str = "{trigger} {class_word}, portrait photo, looking at the camera, soft light"
    top_k: int = 10
    trigger: str = "ohwx"
    class_word: str = "person"
    caption: str = "a photo of {trigger} {class_word}"
    vary_captions: bool = True
    mask_loss: bool = False
    # Loss weight outside the face/hair mask when ``mask_loss`` is on (1.0 = no weighting).
    mask_background_weight: float = 0.1
    flip: bool = True
    seed: int = 42
    mixed_precision: str = "auto"
    gradient_checkpointing: str = "auto"
    use_8bit_adam: str = "auto"
    max_grad_norm: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    # ---- derived ------------------------------------------------------------------------------
    def caption_text(self) -> str:
        return self.caption.format(trigger=self.trigger, class_word=self.class_word)

    def caption_texts(self) -> list[str]:
        """The captions training draws from: ``caption``, then the variants (when ``vary_captions``)."""
        texts = [self.caption_text()]
        if self.vary_captions:
            for template in CAPTION_VARIANTS:
                text = template.format(trigger=self.trigger, class_word=self.class_word)
                if text not in texts:
                    texts.append(text)
        return texts

    def validation_text(self) -> str:
        return self.validation_prompt.format(trigger=self.trigger, class_word=self.class_word)

    def checkpoint_steps(self) -> list[int]:
        """Steps after which a checkpoint is written: every ``checkpoint_every`` and the last one."""
        steps = list(range(self.checkpoint_every, self.steps + 1, self.checkpoint_every))
        if not steps or steps[-1] != self.steps:
            steps.append(self.steps)
        return steps

    # ---- checks -------------------------------------------------------------------------------
    def validate(self) -> TrainingConfig:
        def check(ok: bool, name: str, message: str) -> None:
            if not ok:
                raise InputError(f"Training setting '{name}' {message} (got {getattr(self, name)!r}).")

        check(self.preset in PRESETS or self.preset == "Custom", "preset", f"must be one of {', '.join(PRESETS)}")
        check(1 <= self.steps <= 10_000, "steps", "must be between 1 and 10000")
        check(32 <= self.resolution <= 1024 and self.resolution % 8 == 0, "resolution",
              "must be a multiple of 8 between 32 and 1024")
        check(1 <= self.batch_size <= 16, "batch_size", "must be between 1 and 16")
        check(1 <= self.grad_accum <= 64, "grad_accum", "must be between 1 and 64")
        check(0 < self.learning_rate <= 1e-2, "learning_rate", "must be in (0, 0.01]")
        check(0 < self.text_encoder_lr <= 1e-2, "text_encoder_lr", "must be in (0, 0.01]")
        check(self.lr_schedule in LR_SCHEDULES, "lr_schedule", f"must be one of {', '.join(LR_SCHEDULES)}")
        check(1 <= self.rank <= 256, "rank", "must be between 1 and 256")
        check(1 <= self.alpha <= 512, "alpha", "must be between 1 and 512")
        check(1 <= self.checkpoint_every <= self.steps, "checkpoint_every",
              f"must be between 1 and steps ({self.steps})")
        check(1 <= len(self.validation_seeds) <= 16, "validation_seeds", "must hold 1 to 16 seeds")
        check(1 <= self.validation_steps <= 100, "validation_steps", "must be between 1 and 100")
        check(1 <= self.top_k <= 200, "top_k", "must be between 1 and 200")
        check(bool(_TRIGGER_RE.match(self.trigger)), "trigger",
              "must be 3-32 lowercase letters, digits or '_', starting with a letter")
        check(bool(re.match(r"^[A-Za-z][A-Za-z -]{0,31}$", self.class_word)), "class_word",
              "must be a plain word such as 'person', 'woman', 'man'")
        for name in ("caption", "validation_prompt"):
            try:
                text = getattr(self, name).format(trigger=self.trigger, class_word=self.class_word)
            except (KeyError, IndexError, ValueError):
                text = ""
            check(self.trigger in text and len(text) <= 300, name,
                  "must contain {trigger}, use only {trigger} and {class_word}, and stay under 300 characters")
        check(0.0 <= self.mask_background_weight <= 1.0, "mask_background_weight", "must be between 0 and 1")
        check(self.mixed_precision in PRECISIONS, "mixed_precision", f"must be one of {', '.join(PRECISIONS)}")
        check(self.gradient_checkpointing in AUTO_BOOL, "gradient_checkpointing", "must be auto, on or off")
        check(self.use_8bit_adam in AUTO_BOOL, "use_8bit_adam", "must be auto, on or off")
        check(self.max_grad_norm > 0, "max_grad_norm", "must be positive")
        return self

    def replace(self, **changes: Any) -> TrainingConfig:
        return dataclasses.replace(self, **changes).validate()

    # ---- persistence (job.json) -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["validation_seeds"] = list(self.validation_seeds)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"Unknown training setting(s): {', '.join(unknown)}.")
        values = dict(data)
        if "validation_seeds" in values:
            values["validation_seeds"] = tuple(int(s) for s in values["validation_seeds"])
        return cls(**values).validate()


def preset_config(name: str, n_images: int, **overrides: Any) -> TrainingConfig:
    """The settings of preset ``name`` for a dataset of ``n_images`` crops, then ``overrides``."""
    if name not in PRESETS:
        raise InputError(f"Unknown training preset '{name}'. Choose one of: {', '.join(PRESETS)}.")
    if n_images < 1:
        raise InputError(f"A training set needs at least one face crop, got {n_images}.")
    if name == "Quick":
        steps = min(n_images * 100, 400)
        values: dict[str, Any] = dict(
            steps=steps, grad_accum=2, learning_rate=2e-4, rank=32, alpha=16,
            checkpoint_every=min(50, steps), validation_steps=20, top_k=6,
        )
    elif name == "Balanced":
        steps = min(n_images * 200, 800)
        values = dict(steps=steps, checkpoint_every=min(100, steps), train_text_encoder=True)
    else:
        steps = min(n_images * 300, 1500)
        values = dict(steps=steps, checkpoint_every=min(100, steps), train_text_encoder=True, top_k=12)
    values["preset"] = name
    config = TrainingConfig(**values)
    if overrides:
        if "steps" in overrides and "checkpoint_every" not in overrides:
            overrides["checkpoint_every"] = min(config.checkpoint_every, int(overrides["steps"]))
        config = dataclasses.replace(config, **overrides)
    return config.validate()
