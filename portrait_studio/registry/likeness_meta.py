"""What an exported likeness carries besides its tensors, so a re-import is the same likeness.

A LoRA file from A1111 or ComfyUI knows only its trigger word. Our exports add, under a ``portrait_studio.``
prefix in the safetensors metadata (strings only, which every loader ignores):

- ``class_word``: the word the trigger stands in for ("woman", "man", "person"); prompts and Animate use it;
- ``random_weights``: "true" when the likeness came from a random-weight test model (its effect is noise);
- ``reference_png``: the reference face, base64 PNG (Talk starts from it; Animate's "reference face" too);
- ``identity_f32`` + ``face_backend``: the face model's identity centre (best-of-N's likeness score).

Reading is defensive: an imported file is untrusted, so every value is checked, the picture is decoded
under a pixel cap and re-encoded, and a damaged value is dropped with a note instead of failing the import.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "portrait_studio."
FORMAT_VERSION = "1"
# A metadata value may hold at most 1,000,000 characters (safetensors_header.MAX_METADATA_VALUE_CHARS):
# the reference is shrunk until its base64 fits well below that.
MAX_REFERENCE_CHARS = 700_000
REFERENCE_SIDES = (512, 384, 256)
MAX_REFERENCE_PIXELS = 2048 * 2048
MAX_IDENTITY_VALUES = 4096
_TEXT_CHARS = 120


@dataclass
class LikenessExtras:
    """Fields of a likeness a plain LoRA file does not carry (read back from our metadata)."""

    class_word: str = ""
    random_weights: bool = False
    reference: Any = None  # PIL image or None
    identity: Any = None  # float32 numpy vector or None
    face_backend: str = ""
    notes: list[str] = field(default_factory=list)


def likeness_metadata(class_word: str, random_weights: bool, reference_path: Path | None,
                      identity_path: Path | None, face_backend: str = "") -> dict[str, str]:
    """Metadata entries describing a likeness (added to an export's ``__metadata__``)."""
    meta = {f"{PREFIX}format": FORMAT_VERSION, f"{PREFIX}random_weights": "true" if random_weights else "false"}
    if class_word:
        meta[f"{PREFIX}class_word"] = _text(class_word)
    if reference_path is not None and Path(reference_path).is_file():
        meta[f"{PREFIX}reference_png"] = _reference_base64(Path(reference_path))
    if identity_path is not None and Path(identity_path).is_file():
        import numpy as np

        vector = np.load(identity_path, allow_pickle=False).astype("<f4").reshape(-1)
        meta[f"{PREFIX}identity_f32"] = base64.b64encode(vector.tobytes()).decode("ascii")
        if face_backend:
            meta[f"{PREFIX}face_backend"] = _text(face_backend)
    return meta


def read_likeness_metadata(metadata: dict[str, str]) -> LikenessExtras | None:
    """The likeness fields of an imported file's metadata, or None when it has none of ours."""
    if f"{PREFIX}format" not in metadata:
        return None
    extras = LikenessExtras(
        class_word=_text(metadata.get(f"{PREFIX}class_word", "")),
        random_weights=str(metadata.get(f"{PREFIX}random_weights", "")).strip().lower() == "true",
    )
    raw_reference = metadata.get(f"{PREFIX}reference_png")
    if raw_reference:
        extras.reference = _decode_reference(raw_reference, extras.notes)
    raw_identity = metadata.get(f"{PREFIX}identity_f32")
    if raw_identity:
        extras.identity = _decode_identity(raw_identity, extras.notes)
        if extras.identity is not None:
            extras.face_backend = _text(metadata.get(f"{PREFIX}face_backend", ""))
    return extras


def _reference_base64(path: Path) -> str:
    from PIL import Image

    with Image.open(path) as opened:
        image = opened.convert("RGB")
    for side in REFERENCE_SIDES:
        copy = image.copy()
        copy.thumbnail((side, side))
        buffer = io.BytesIO()
        copy.save(buffer, format="PNG", optimize=True)
        encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
        if len(encoded) <= MAX_REFERENCE_CHARS:
            return encoded
    return encoded  # 256 px RGB PNG is at most ~260 kB: always fits


def _decode_reference(raw: str, notes: list[str]) -> Any:
    from portrait_studio.errors import InputError
    from portrait_studio.media.images import load_image

    try:
        data = base64.b64decode(raw, validate=True)
        return load_image(data, name="the file's reference face", max_pixels=MAX_REFERENCE_PIXELS).image
    except (binascii.Error, ValueError, InputError) as exc:
        notes.append(f"The file's reference face could not be read and was left out ({exc}).")
        return None


def _decode_identity(raw: str, notes: list[str]) -> Any:
    import numpy as np

    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        data = b""
    vector = np.frombuffer(data, dtype="<f4") if data and len(data) % 4 == 0 else np.zeros(0, dtype="<f4")
    if vector.size == 0 or vector.size > MAX_IDENTITY_VALUES or not np.isfinite(vector).all():
        notes.append("The file's face identity was damaged and was left out (best-of-N will not score it).")
        return None
    return vector.astype(np.float32)


def _text(value: object) -> str:
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in str(value or "")).split())
    return text[:_TEXT_CHARS]
