"""The LoRA registry: per-owner folders of likenesses, safe under concurrent writers.

Adding an entry builds it completely in a hidden staging folder, then, under the namespace lock,
picks a unique name and slug, writes the manifest and renames the folder into place: readers see a
whole entry or nothing, without taking the lock. Deleting renames the folder away first.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import shutil
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from portrait_studio.errors import InputError
from portrait_studio.registry.convert import (
    EXPORT_FORMATS,
    ExportDescription,
    canonical_state_dict,
    export_metadata,
    export_tensors,
    write_safetensors_atomic,
)
from portrait_studio.registry.likeness_meta import likeness_metadata, read_likeness_metadata
from portrait_studio.registry.records import (
    IDENTITY_NAME,
    INSTANT_NAME,
    KIND_INSTANT,
    KIND_LORA,
    LORA_NAME,
    PREVIEW_NAME,
    REFERENCE_NAME,
    LoraRecord,
    read_record,
    write_manifest,
)
from portrait_studio.registry.shapes import BaseShapes
from portrait_studio.registry.storage import (
    MAX_SLUG_CHARS,
    clean_name,
    namespace_lock,
    owner_key,
    slugify,
    write_bytes_atomic,
)
from portrait_studio.registry.validate import DEFAULT_MAX_LORA_BYTES, LoraFileInfo, sha256_of, validate_lora_file

_STAGING_PREFIX = ".staging-"
_TRASH_PREFIX = ".trash-"
_DELETED_PREFIX = ".deleted-"  # a deleted entry, kept for UNDO_SECONDS so "Undo" can bring it back
UNDO_SECONDS = 3600
_STALE_STAGING_SECONDS = 24 * 3600
_MAX_SAME_NAME = 1000


class LoraRegistry:
    def __init__(self, root: Path, max_lora_bytes: int = DEFAULT_MAX_LORA_BYTES) -> None:
        self.root = Path(root)
        self.max_lora_bytes = max_lora_bytes

    # ---- reading ----------------------------------------------------------------------------
    def namespace(self, owner: str) -> Path:
        return self.root / "owners" / owner_key(owner)

    def list(self, owner: str) -> list[LoraRecord]:
        """Complete entries of ``owner``, newest first."""
        folder = self.namespace(owner)
        if not folder.is_dir():
            return []
        records = [
            record
            for child in folder.iterdir()
            if child.is_dir() and not child.name.startswith(".") and (record := read_record(child)) is not None
        ]
        return sorted(records, key=lambda r: (r.created, r.slug), reverse=True)

    def get(self, owner: str, slug_or_name: str) -> LoraRecord:
        """Look up by slug, then by name (case-insensitive); InputError naming what exists otherwise."""
        records = self.list(owner)
        wanted = str(slug_or_name).strip()
        for matches in (
            lambda r: r.slug == wanted,
            lambda r: r.name.casefold() == wanted.casefold(),
            lambda r: r.slug == slugify(wanted),
        ):
            found = [r for r in records if matches(r)]
            if found:
                return found[0]
        known = ", ".join(sorted(r.slug for r in records)) or "none yet"
        raise InputError(f"No LoRA named '{wanted[:80]}'. Known LoRAs: {known}.")

    # ---- adding -----------------------------------------------------------------------------
    def add_trained(
        self,
        owner: str,
        name: str,
        lora_file: Path,
        *,
        trigger: str,
        class_word: str,
        base_model: str,
        rank: int,
        steps: int,
        similarity: float | None,
        preview: Any = None,
        reference: Any = None,
        extra: dict[str, Any] | None = None,
        base_revision: str = "",
        random_weights: bool | None = None,
        identity: Any = None,
    ) -> LoraRecord:
        """Store a LoRA that training wrote (diffusers format). ``base_model`` may be ``"id@revision"``."""
        info = validate_lora_file(Path(lora_file), max_bytes=self.max_lora_bytes)
        if not base_revision and "@" in base_model:
            base_model, base_revision = base_model.rsplit("@", 1)
        extra = dict(extra or {})
        score = None if similarity is None else float(similarity)
        fields = dict(
            trigger=_meta_text(trigger), class_word=_meta_text(class_word), base_model=_meta_text(base_model, 300),
            base_revision=_meta_text(base_revision), rank=int(rank), steps=int(steps),
            similarity=score if score is not None and math.isfinite(score) else None, source="trained",
            random_weights=bool(extra.get("random_weights", False) if random_weights is None else random_weights),
            extra=extra,
        )
        return self._store(owner, clean_name(name), info, fields, preview, reference, identity=identity)

    def import_file(
        self, owner: str, path: Path, name: str | None = None, base_shapes: BaseShapes | None = None
    ) -> LoraRecord:
        """Validate a user's .safetensors LoRA (against ``base_shapes`` when given) and store it."""
        path = Path(path)
        info = validate_lora_file(path, base_shapes=base_shapes, max_bytes=self.max_lora_bytes)
        meta = info.metadata
        title = _meta_text(meta.get("modelspec.title") or meta.get("ss_output_name") or path.stem)
        base = _meta_text(meta.get("modelspec.base_model") or Path(meta.get("ss_sd_model_name", "")).name)
        # Our own exports carry the likeness (class word, reference face, flags); anyone else's carry none.
        likeness = read_likeness_metadata(meta)
        extra: dict[str, Any] = {"format_in": info.grammar}
        if likeness is not None:
            extra["exported_by"] = "portrait_studio"
            if likeness.face_backend:
                extra["face_backend"] = likeness.face_backend
            if likeness.notes:
                extra["import_notes"] = likeness.notes
        fields = dict(
            trigger=_meta_text(meta.get("modelspec.trigger_phrase") or _kohya_trigger(meta)),
            class_word=likeness.class_word if likeness else "",
            base_model=base, base_revision="", rank=info.rank, steps=_meta_int(meta.get("ss_steps")),
            similarity=None, source="imported", random_weights=bool(likeness and likeness.random_weights),
            extra=extra,
        )
        reference = likeness.reference if likeness else None
        identity = likeness.identity if likeness else None
        return self._store(owner, clean_name(name if name is not None else (title or "lora")), info, fields,
                           reference, reference, identity=identity)

    def add_instant(
        self,
        owner: str,
        name: str,
        write_encodings: Callable[[Path], Path],
        *,
        reference: Any,
        trigger: str,
        class_word: str,
        base_model: str,
        faces: int,
        random_weights: bool,
        extra: dict[str, Any] | None = None,
        identity: Any = None,
    ) -> LoraRecord:
        """Store an instant likeness: face encodings (``write_encodings(path)`` writes them) + reference face.

        Same namespaces, locking and unique names as LoRAs; ``kind`` is "instant" and there is no LoRA file.
        """
        fields = dict(
            trigger=_meta_text(trigger), class_word=_meta_text(class_word), base_model=_meta_text(base_model, 300),
            base_revision="", rank=0, steps=0, similarity=None, source="photos", random_weights=bool(random_weights),
            extra={**(extra or {}), "faces": int(faces)}, kind=KIND_INSTANT,
        )
        return self._store(owner, clean_name(name), None, fields, reference, reference, write_encodings, identity)

    def _store(
        self, owner: str, name: str, info: LoraFileInfo | None, fields: dict[str, Any],
        preview: Any = None, reference: Any = None, write_payload: Callable[[Path], Path] | None = None,
        identity: Any = None,
    ) -> LoraRecord:
        namespace = self.namespace(owner)
        namespace.mkdir(parents=True, exist_ok=True)
        staging = namespace / f"{_STAGING_PREFIX}{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            if write_payload is not None:
                lora_path = write_payload(staging / INSTANT_NAME)
            else:
                assert info is not None
                lora_path = write_safetensors_atomic(canonical_state_dict(info), {"format": "pt"}, staging / LORA_NAME)
                fields = {**fields, "kind": KIND_LORA}
            for image, filename in ((preview, PREVIEW_NAME), (reference, REFERENCE_NAME)):
                if image is not None:
                    write_bytes_atomic(staging / filename, _png_bytes(image, filename))
            if identity is not None:
                write_bytes_atomic(staging / IDENTITY_NAME, _npy_bytes(identity))
            created = datetime.now(timezone.utc).isoformat(timespec="microseconds")
            with namespace_lock(namespace):
                self._sweep(namespace)
                final_name, slug = _unique_name(name, self.list(owner))
                record = LoraRecord(
                    name=final_name, slug=slug, created=created, sha256=sha256_of(lora_path),
                    folder=namespace / slug, **fields,
                )
                write_manifest(record, staging)
                os.rename(staging, record.folder)
            return record
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    # ---- changing ---------------------------------------------------------------------------
    def rename(self, owner: str, slug_or_name: str, new_name: str) -> LoraRecord:
        new_name = clean_name(new_name)
        namespace = self.namespace(owner)
        with namespace_lock(namespace):
            record = self.get(owner, slug_or_name)
            others = [r for r in self.list(owner) if r.slug != record.slug]
            new_slug = slugify(new_name)
            clash = [r for r in others if r.slug == new_slug or r.name.casefold() == new_name.casefold()]
            if clash:
                raise InputError(f"A LoRA named '{clash[0].name}' already exists; choose another name.")
            renamed = dataclasses.replace(record, name=new_name, slug=new_slug, folder=namespace / new_slug)
            write_manifest(renamed, record.folder)  # crash after this: folder name stays the slug of record
            if new_slug != record.slug:
                os.rename(record.folder, renamed.folder)
        return renamed

    def delete(self, owner: str, slug_or_name: str, undoable: bool = True) -> str:
        """Remove an entry from the listings; returns the token :meth:`undo_delete` takes within an hour.

        ``undoable=False`` (the command line, which has no undo) removes the files at once.
        """
        namespace = self.namespace(owner)
        with namespace_lock(namespace):
            record = self.get(owner, slug_or_name)
            self._sweep(namespace)
            token = uuid.uuid4().hex
            parked = namespace / f"{_DELETED_PREFIX if undoable else _TRASH_PREFIX}{token}"
            os.rename(record.folder, parked)  # gone from listings at once
            os.utime(parked)  # a rename keeps the old mtime; the undo window counts from now
        if not undoable:
            shutil.rmtree(parked, ignore_errors=True)
        return token

    def undo_delete(self, owner: str, token: str) -> LoraRecord:
        """Put a deleted entry back (under a new name if its old one was taken since)."""
        namespace = self.namespace(owner)
        if not (isinstance(token, str) and len(token) == 32 and all(c in "0123456789abcdef" for c in token)):
            raise InputError("Nothing to undo: that deletion is unknown.")
        with namespace_lock(namespace):
            parked = namespace / f"{_DELETED_PREFIX}{token}"
            old = read_record(parked) if parked.is_dir() else None
            if old is None:
                raise InputError(
                    f"Nothing to undo: the deleted entry is gone (deletions can be undone for {UNDO_SECONDS // 60}"
                    " minutes)."
                )
            final_name, slug = _unique_name(old.name, self.list(owner))
            restored = dataclasses.replace(old, name=final_name, slug=slug, folder=namespace / slug)
            write_manifest(restored, parked)
            os.rename(parked, restored.folder)
        return restored

    def export(self, owner: str, slug: str, fmt: str, out_path: Path) -> Path:
        """Write the LoRA as ``kohya`` (A1111/ComfyUI) or ``diffusers``; ``out_path`` may be a folder."""
        if fmt not in EXPORT_FORMATS:
            raise InputError(f"Unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}.")
        record = self.get(owner, slug)
        if record.is_instant:
            raise InputError(
                f"'{record.name}' is an instant likeness (face encodings for the IP-Adapter), not a LoRA: there "
                "is no LoRA file to export. Train a likeness from the same photos to get one."
            )
        out_path = Path(out_path)
        if out_path.is_dir():
            suffix = "" if fmt == "kohya" else "-diffusers"
            out_path = out_path / f"{record.slug}{suffix}.safetensors"
        elif out_path.suffix.lower() != ".safetensors":
            raise InputError(f"Export file '{out_path.name}' must end in .safetensors.")
        info = validate_lora_file(record.lora_path, max_bytes=self.max_lora_bytes)
        canonical = canonical_state_dict(info)
        base = f"{record.base_model}@{record.base_revision}" if record.base_revision else record.base_model
        description = ExportDescription(
            title=record.name, trigger=record.trigger, base_model=base, created=record.created,
            random_weights=record.random_weights,
        )
        metadata = export_metadata(fmt, description, canonical)
        metadata.update(likeness_metadata(record.class_word, record.random_weights, record.reference_path,
                                          record.identity_path, str(record.extra.get("face_backend", ""))))
        return write_safetensors_atomic(export_tensors(fmt, canonical), metadata, out_path)

    # ---- housekeeping -----------------------------------------------------------------------
    @staticmethod
    def _sweep(namespace: Path) -> None:
        """Remove leftovers of crashed writers (caller holds the lock)."""
        now = time.time()
        for child in namespace.iterdir():
            age = now - child.stat().st_mtime
            if (child.name.startswith(_TRASH_PREFIX)
                    or (child.name.startswith(_STAGING_PREFIX) and age > _STALE_STAGING_SECONDS)
                    or (child.name.startswith(_DELETED_PREFIX) and age > UNDO_SECONDS)):
                shutil.rmtree(child, ignore_errors=True)


def _unique_name(name: str, existing: list[LoraRecord]) -> tuple[str, str]:
    """``name`` and its slug, or ``"name (2)"`` / ``slug-2`` and so on when taken."""
    slugs = {r.slug for r in existing}
    names = {r.name.casefold() for r in existing}
    base_slug = slugify(name)
    for n in range(1, _MAX_SAME_NAME):
        candidate = name if n == 1 else f"{name} ({n})"
        suffix = "" if n == 1 else f"-{n}"
        slug = base_slug[: MAX_SLUG_CHARS - len(suffix)].rstrip("-") + suffix
        if slug not in slugs and candidate.casefold() not in names:
            return candidate, slug
    raise InputError(f"Too many LoRAs named '{name}'; choose another name.")


def _png_bytes(image: Any, filename: str) -> bytes:
    """PNG bytes of a PIL image, or of an image file training wrote (re-encoded, metadata dropped)."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, (str, Path)):
        try:
            with Image.open(image) as opened:
                opened.load()
                image = opened.copy()
        except (OSError, UnidentifiedImageError) as exc:
            raise InputError(f"Could not read the image for {filename} from '{Path(image).name}': {exc}") from None
    if not isinstance(image, Image.Image):
        raise InputError(f"{filename} must be a PIL image or an image file, got {type(image).__name__}.")
    buffer = io.BytesIO()
    image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def _npy_bytes(values: Any) -> bytes:
    """A finite 1-D float32 vector as .npy bytes (read back with ``allow_pickle=False``)."""
    import numpy as np

    vector = np.asarray(values, dtype=np.float32).reshape(-1)
    if vector.size == 0 or vector.size > 4096 or not np.isfinite(vector).all():
        raise InputError("The identity embedding is empty or damaged: check the photos again.")
    buffer = io.BytesIO()
    np.save(buffer, vector, allow_pickle=False)
    return buffer.getvalue()


def _meta_text(value: object, limit: int = 120) -> str:
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in str(value or "")).split())
    return text[:limit]


def _kohya_trigger(metadata: dict[str, str]) -> str:
    """The trigger of a kohya file whose captions had a single tag (as our export writes), else "".

    A style LoRA's many tags say nothing about a trigger, so they are not guessed from.
    """
    import json

    try:
        frequencies = json.loads(metadata.get("ss_tag_frequency") or "{}")
        counts: dict[str, int] = {}
        for tags in frequencies.values():
            for tag, count in tags.items():
                counts[str(tag)] = counts.get(str(tag), 0) + int(count)
    except (ValueError, TypeError, AttributeError):
        return ""
    return next(iter(counts)) if len(counts) == 1 else ""


def _meta_int(value: object) -> int:
    try:
        return max(0, int(str(value)))
    except (TypeError, ValueError):
        return 0
