"""Style presets: prompt recipes stored as JSON data, shipped in ``assets/styles`` and added by users.

A preset file is one JSON object; its id is the file name without ``.json``::

    {
      "title": "Studio headshot",
      "description": "Clean, evenly lit headshot on a grey backdrop",
      "prompt": "professional studio headshot of {subject}, softbox lighting, 85mm",
      "negative_prompt": "blurry, deformed",
      "sampler": "DPM++ 2M Karras", "steps": 30, "guidance": 7.0,
      "width": 512, "height": 640,
      "style_lora": {"role": "<model role>" | "name": "<LoRA in your Library>", "weight": 0.7}
    }

``{subject}`` becomes the likeness ("<trigger> <class word>") or ``subject`` (default "a person") without
one. Sizes are for a 512 px model (SD1.5); other models scale them. Users put their own files in
``<home>/styles``; a user preset with a built-in's id replaces it. Every problem is reported as
"file, field, problem".
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portrait_studio.config import Settings
from portrait_studio.errors import InputError
from portrait_studio.models.manager import SCHEDULERS

log = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).resolve().parents[2] / "assets" / "styles"
SUBJECT = "{subject}"
NATIVE_SIZE = 512  # preset sizes are written for SD1.5's native resolution
MAX_PRESET_BYTES = 64 * 1024
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_FIELDS = {
    "title", "description", "prompt", "negative_prompt", "subject", "sampler", "steps", "guidance", "width",
    "height", "style_lora",
}


@dataclass(frozen=True)
class StyleLora:
    """A style LoRA a preset turns on: a model role (published file) or a LoRA in the user's Library."""

    weight: float
    role: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class StylePreset:
    id: str
    title: str
    prompt: str
    negative_prompt: str = ""
    description: str = ""
    subject: str = "a person"
    sampler: str = "DPM++ 2M Karras"
    steps: int = 30
    guidance: float = 7.0
    width: int = 512
    height: int = 512
    style_lora: StyleLora | None = None
    source: Path | None = None
    builtin: bool = True

    def render_prompt(self, subject: str | None = None) -> str:
        return self.prompt.replace(SUBJECT, subject or self.subject)

    def size_for(self, default_size: int) -> tuple[int, int]:
        """(width, height) scaled from SD1.5's 512 px to a model whose native side is ``default_size``."""
        factor = default_size / NATIVE_SIZE
        return tuple(max(64, int(round(side * factor / 8)) * 8) for side in (self.width, self.height))  # type: ignore[return-value]


def user_styles_dir(settings: Settings) -> Path:
    return settings.home / "styles"


# ---- parsing ------------------------------------------------------------------------------------------
def _fail(path: Path, field: str | None, problem: str) -> InputError:
    where = f"field '{field}': " if field else ""
    return InputError(f"Style preset {path.name} ({path}): {where}{problem}")


def _text(data: dict, path: Path, field: str, *, required: bool = False, default: str = "", limit: int = 2000) -> str:
    value = data.get(field, None)
    if value is None:
        if required:
            raise _fail(path, field, "is missing; it is required.")
        return default
    if not isinstance(value, str):
        raise _fail(path, field, f"must be text, got {type(value).__name__} {value!r:.60}.")
    value = value.strip()
    if required and not value:
        raise _fail(path, field, "is empty.")
    if len(value) > limit:
        raise _fail(path, field, f"has {len(value)} characters; the limit is {limit}.")
    return value


def _number(data: dict, path: Path, field: str, default: float, low: float, high: float, integer: bool) -> Any:
    value = data.get(field, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
        kind = "a whole number" if integer else "a number"
        raise _fail(path, field, f"must be {kind} between {low:g} and {high:g}, got {value!r:.60}.")
    if not math.isfinite(value) or not low <= value <= high:
        raise _fail(path, field, f"must be between {low:g} and {high:g}, got {value!r}.")
    return int(value) if integer else float(value)


def _style_lora(data: dict, path: Path) -> StyleLora | None:
    raw = data.get("style_lora")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _fail(path, "style_lora", 'must be an object like {"role": "...", "weight": 0.7}.')
    unknown = set(raw) - {"role", "name", "weight"}
    if unknown:
        raise _fail(path, "style_lora", f"unknown key(s) {', '.join(sorted(unknown))}; use role or name, and weight.")
    role, name = raw.get("role"), raw.get("name")
    if (role is None) == (name is None):
        raise _fail(path, "style_lora", "needs exactly one of 'role' (a model role) or 'name' (a Library LoRA).")
    if role is not None:
        from portrait_studio.models.roles import ROLES

        if role not in ROLES:
            raise _fail(path, "style_lora.role", f"unknown model role {role!r}.")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise _fail(path, "style_lora.name", "must be the name of a LoRA in your Library.")
    weight = _number(raw, path, "weight", 0.8, -2.0, 2.0, integer=False)
    return StyleLora(weight=weight, role=role, name=name.strip() if name else None)


def parse_preset(data: Any, path: Path, builtin: bool = False) -> StylePreset:
    """Check one preset object; raise :class:`InputError` naming the file, the field and the problem."""
    preset_id = path.stem
    if not _ID_RE.match(preset_id):
        raise _fail(path, None, "the file name must be lower-case letters, digits, '-' or '_' (it is the preset id).")
    if not isinstance(data, dict):
        raise _fail(path, None, f"must hold a JSON object, got {type(data).__name__}.")
    unknown = set(data) - _FIELDS
    if unknown:
        raise _fail(path, ", ".join(sorted(unknown)), f"unknown field; known fields are {', '.join(sorted(_FIELDS))}.")
    prompt = _text(data, path, "prompt", required=True)
    if SUBJECT not in prompt:
        raise _fail(path, "prompt", f"must contain {SUBJECT} where the person goes.")
    sampler = _text(data, path, "sampler", default="DPM++ 2M Karras")
    if sampler not in SCHEDULERS:
        raise _fail(path, "sampler", f"unknown sampler {sampler!r}; choose one of {', '.join(SCHEDULERS)}.")
    sizes = {}
    for field in ("width", "height"):
        sizes[field] = _number(data, path, field, 512, 256, 1024, integer=True)
        if sizes[field] % 8:
            raise _fail(path, field, f"must be a multiple of 8, got {sizes[field]}.")
    return StylePreset(
        id=preset_id,
        title=_text(data, path, "title", default=preset_id.replace("-", " ").replace("_", " ").capitalize(), limit=80),
        prompt=prompt,
        negative_prompt=_text(data, path, "negative_prompt"),
        description=_text(data, path, "description", limit=300),
        subject=_text(data, path, "subject", default="a person", limit=200),
        sampler=sampler,
        steps=_number(data, path, "steps", 30, 1, 150, integer=True),
        guidance=_number(data, path, "guidance", 7.0, 0.0, 30.0, integer=False),
        width=sizes["width"],
        height=sizes["height"],
        style_lora=_style_lora(data, path),
        source=path,
        builtin=builtin,
    )


def load_preset_file(path: Path, builtin: bool = False) -> StylePreset:
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _fail(path, None, f"cannot be read ({exc.strerror or exc}).") from None
    if size > MAX_PRESET_BYTES:
        raise _fail(path, None, f"is {size} bytes; a preset must be under {MAX_PRESET_BYTES} bytes.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise _fail(path, None, "is not UTF-8 text.") from None
    except json.JSONDecodeError as exc:
        raise _fail(path, None, f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}).") from None
    return parse_preset(data, path, builtin)


# ---- catalogue ----------------------------------------------------------------------------------------
def _scan(folder: Path, builtin: bool, problems: list[str]) -> dict[str, StylePreset]:
    found: dict[str, StylePreset] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.json")):
        try:
            found[path.stem] = load_preset_file(path, builtin)
        except InputError as exc:
            if builtin:
                raise  # a broken shipped preset is our bug: fail loudly
            problems.append(str(exc))
            log.warning("%s", exc)
    return found


def preset_catalogue(settings: Settings, builtin_dir: Path | None = None) -> tuple[list[StylePreset], list[str]]:
    """All usable presets (built-ins, then the user's; a user file with a built-in's id replaces it) and
    one message per user file that could not be used."""
    problems: list[str] = []
    presets = _scan(builtin_dir or BUILTIN_DIR, True, problems)
    presets.update(_scan(user_styles_dir(settings), False, problems))
    ordered = sorted(presets.values(), key=lambda p: (not p.builtin, p.title.casefold()))
    return ordered, problems


def list_presets(settings: Settings) -> list[StylePreset]:
    """Presets for the style picker; broken user files are left out (see :func:`preset_problems`)."""
    return preset_catalogue(settings)[0]


def preset_problems(settings: Settings) -> list[str]:
    return preset_catalogue(settings)[1]


def get_preset(settings: Settings, preset_id: str) -> StylePreset:
    """The preset ``preset_id`` (id or title, case-insensitive); a broken user file raises its own error."""
    wanted = str(preset_id).strip()
    user_file = user_styles_dir(settings) / f"{wanted}.json"
    if _ID_RE.match(wanted) and user_file.is_file():
        return load_preset_file(user_file)
    presets = list_presets(settings)
    for preset in presets:
        if preset.id == wanted or preset.title.casefold() == wanted.casefold():
            return preset
    known = ", ".join(p.id for p in presets) or "none"
    raise InputError(f"Unknown style preset {wanted[:80]!r}. Available presets: {known}.")
