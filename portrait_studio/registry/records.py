"""One likeness in the registry: a folder with the LoRA, its manifest, a preview and the reference face.

```
<namespace>/<slug>/lora.safetensors      canonical diffusers-format LoRA            (kind "lora")
                   instant.safetensors   face encodings for the IP-Adapter           (kind "instant")
                   manifest.json         written last, atomically (a folder without it is ignored)
                   preview.png           optional
                   reference.png         optional (the face the likeness was trained on / made from)
                   identity.npy          optional (face-model identity centre of the crops; its backend
                                         is ``extra["face_backend"]``): the likeness score of best-of-N
```
The folder name is the slug of record; the manifest's copy is only informative. An *instant* likeness
holds no LoRA: only the image encoder's encodings of the kept face crops and the reference face.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from portrait_studio.registry.storage import write_bytes_atomic

MANIFEST_NAME = "manifest.json"
LORA_NAME = "lora.safetensors"
PREVIEW_NAME = "preview.png"
REFERENCE_NAME = "reference.png"
INSTANT_NAME = "instant.safetensors"
IDENTITY_NAME = "identity.npy"  # the face backend's identity centre of the kept crops (likeness score)
MANIFEST_VERSION = 1
SOURCES = ("trained", "imported", "photos")
KIND_LORA = "lora"
KIND_INSTANT = "instant"
KINDS = (KIND_LORA, KIND_INSTANT)
_PAYLOAD = {KIND_LORA: LORA_NAME, KIND_INSTANT: INSTANT_NAME}


@dataclass(frozen=True)
class LoraRecord:
    name: str
    slug: str
    trigger: str
    class_word: str
    base_model: str
    base_revision: str
    rank: int
    steps: int
    similarity: float | None
    created: str  # ISO 8601, UTC
    source: str  # "trained", "imported" or "photos" (instant)
    sha256: str  # of the payload: lora.safetensors, or instant.safetensors
    folder: Path
    random_weights: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    kind: str = KIND_LORA  # "lora" or "instant"

    @property
    def is_instant(self) -> bool:
        return self.kind == KIND_INSTANT

    @property
    def lora_path(self) -> Path:
        return self.folder / LORA_NAME

    @property
    def instant_path(self) -> Path:
        return self.folder / INSTANT_NAME

    @property
    def identity_path(self) -> Path | None:
        path = self.folder / IDENTITY_NAME
        return path if path.is_file() else None

    @property
    def payload_path(self) -> Path:
        return self.folder / _PAYLOAD[self.kind]

    @property
    def preview_path(self) -> Path | None:
        path = self.folder / PREVIEW_NAME
        return path if path.is_file() else None

    @property
    def reference_path(self) -> Path | None:
        path = self.folder / REFERENCE_NAME
        return path if path.is_file() else None

    def to_dict(self, include_paths: bool = True) -> dict[str, Any]:
        """Plain JSON-ready dict; ``include_paths=False`` for anything a remote visitor sees."""
        data = asdict(self)
        data.pop("folder")
        if include_paths:
            data["lora_path"] = None if self.is_instant else str(self.lora_path)
            data["instant_path"] = str(self.instant_path) if self.is_instant else None
            data["preview_path"] = str(self.preview_path) if self.preview_path else None
            data["reference_path"] = str(self.reference_path) if self.reference_path else None
        return data


def manifest_json(record: LoraRecord) -> bytes:
    data = {"manifest_version": MANIFEST_VERSION, **record.to_dict(include_paths=False)}
    # default=str: an odd value in ``extra`` (a Path, a datetime) is stored as text rather than lost.
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return (text + "\n").encode("utf-8")


def write_manifest(record: LoraRecord, folder: Path | None = None) -> None:
    write_bytes_atomic((folder or record.folder) / MANIFEST_NAME, manifest_json(record))


def read_record(folder: Path) -> LoraRecord | None:
    """The record of ``folder``, or None when it is not a complete, readable entry."""
    try:
        data = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    kind = str(data.get("kind", KIND_LORA))
    if kind not in KINDS or not (folder / _PAYLOAD[kind]).is_file():
        return None
    try:
        similarity = data.get("similarity")
        return LoraRecord(
            name=str(data["name"]),
            slug=folder.name,
            trigger=str(data.get("trigger", "")),
            class_word=str(data.get("class_word", "")),
            base_model=str(data.get("base_model", "")),
            base_revision=str(data.get("base_revision", "")),
            rank=int(data.get("rank", 0)),
            steps=int(data.get("steps", 0)),
            similarity=None if similarity is None else float(similarity),
            created=str(data.get("created", "")),
            source=str(data.get("source", "imported")),
            sha256=str(data.get("sha256", "")),
            folder=folder,
            random_weights=bool(data.get("random_weights", False)),
            extra=dict(data.get("extra") or {}),
            kind=kind,
        )
    except (KeyError, TypeError, ValueError):
        return None
