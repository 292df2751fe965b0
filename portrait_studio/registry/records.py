"""One likeness in the registry: a folder with the LoRA, its manifest, a preview and the reference face.

```
<namespace>/<slug>/lora.safetensors   canonical diffusers-format LoRA
                   manifest.json      written last, atomically (a folder without it is ignored)
                   preview.png        optional
                   reference.png      optional (the face the likeness was trained on)
```
The folder name is the slug of record; the manifest's copy is only informative.
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
MANIFEST_VERSION = 1
SOURCES = ("trained", "imported")


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
    source: str  # "trained" or "imported"
    sha256: str  # of lora.safetensors
    folder: Path
    random_weights: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def lora_path(self) -> Path:
        return self.folder / LORA_NAME

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
            data["lora_path"] = str(self.lora_path)
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
    if not isinstance(data, dict) or not (folder / LORA_NAME).is_file():
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
        )
    except (KeyError, TypeError, ValueError):
        return None
