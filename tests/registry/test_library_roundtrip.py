"""Library safety: an exported likeness comes back whole (class word, reference face, identity, flags) and a
deletion can be undone."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from portrait_studio.errors import InputError
from portrait_studio.registry import LoraRegistry
from portrait_studio.registry.likeness_meta import PREFIX, read_likeness_metadata
from tests.registry.lora_test_files import lora_tensors, write_diffusers


@pytest.fixture()
def registry(tmp_path: Path) -> LoraRegistry:
    return LoraRegistry(tmp_path / "registry")


@pytest.fixture()
def likeness(registry: LoraRegistry, tmp_path: Path, base_shapes: dict):  # noqa: ANN201
    trained = write_diffusers(tmp_path / "trained.safetensors", lora_tensors(base_shapes, text_encoder=False),
                              style="old")
    gradient = np.linspace(0, 255, 40 * 48 * 3).reshape(48, 40, 3).astype(np.uint8)
    reference = Image.fromarray(gradient, "RGB")
    identity = np.linspace(-1, 1, 128, dtype=np.float32)
    return registry.add_trained(
        "local", "Grace", trained, trigger="ohwx", class_word="woman", base_model="tiny/sd@abc", rank=4, steps=8,
        similarity=0.7, preview=reference, reference=reference, random_weights=True, identity=identity,
        extra={"face_backend": "dlib"},
    )


def _metadata(path: Path) -> dict[str, str]:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + length]).get("__metadata__", {})


@pytest.mark.parametrize("fmt", ["kohya", "diffusers"])
def test_export_then_import_keeps_the_likeness(registry, likeness, tmp_path, base_shapes, fmt) -> None:  # noqa: ANN001
    exported = registry.export("local", likeness.slug, fmt, tmp_path / f"grace-{fmt}.safetensors")
    assert _metadata(exported)[f"{PREFIX}random_weights"] == "true"
    other = LoraRegistry(tmp_path / "elsewhere")  # another machine's library
    back = other.import_file("local", exported, base_shapes=base_shapes)
    assert (back.name, back.trigger, back.class_word) == ("Grace", "ohwx", "woman")
    assert back.random_weights is True
    assert back.reference_path is not None and back.preview_path is not None
    assert np.array_equal(np.asarray(Image.open(back.reference_path).convert("RGB")),
                          np.asarray(Image.open(likeness.reference_path).convert("RGB")))
    assert np.array_equal(np.load(back.identity_path), np.load(likeness.identity_path))
    assert back.extra["face_backend"] == "dlib" and back.sha256 == likeness.sha256


def test_a_plain_lora_imports_without_likeness_fields(registry, likeness, tmp_path, base_shapes) -> None:  # noqa: ANN001
    plain = write_diffusers(tmp_path / "style.safetensors", lora_tensors(base_shapes, text_encoder=False))
    record = registry.import_file("local", plain, name="Ink")
    assert (record.class_word, record.random_weights, record.reference_path) == ("", False, None)


def test_damaged_likeness_fields_are_dropped_with_a_note() -> None:
    meta = {f"{PREFIX}format": "1", f"{PREFIX}reference_png": base64.b64encode(b"not a png").decode(),
            f"{PREFIX}identity_f32": base64.b64encode(np.array([np.nan], "<f4").tobytes()).decode(),
            f"{PREFIX}class_word": "man\n\x00", f"{PREFIX}random_weights": "TRUE"}
    extras = read_likeness_metadata(meta)
    assert extras is not None
    assert (extras.class_word, extras.random_weights, extras.reference, extras.identity) == ("man", True, None, None)
    assert len(extras.notes) == 2 and "reference face" in extras.notes[0]
    assert read_likeness_metadata({"modelspec.title": "x"}) is None


def test_delete_then_undo_brings_the_entry_back(registry, likeness) -> None:  # noqa: ANN001
    token = registry.delete("local", "Grace")
    assert registry.list("local") == []
    restored = registry.undo_delete("local", token)
    assert (restored.name, restored.slug, restored.sha256) == ("Grace", "grace", likeness.sha256)
    assert [r.slug for r in registry.list("local")] == ["grace"]
    assert restored.reference_path is not None and restored.class_word == "woman"
    with pytest.raises(InputError, match="Nothing to undo"):
        registry.undo_delete("local", token)
    with pytest.raises(InputError, match="Nothing to undo"):
        registry.undo_delete("local", "../../etc")


def test_undo_after_the_name_was_taken_uses_a_free_name(registry, likeness, tmp_path, base_shapes) -> None:  # noqa: ANN001
    token = registry.delete("local", "grace")
    again = write_diffusers(tmp_path / "again.safetensors", lora_tensors(base_shapes, text_encoder=False))
    registry.import_file("local", again, name="Grace")
    restored = registry.undo_delete("local", token)
    assert (restored.name, restored.slug) == ("Grace (2)", "grace-2")
    assert restored.folder.is_dir() and restored.lora_path.is_file()


def test_undo_is_only_for_the_owner_and_expires(registry, likeness) -> None:  # noqa: ANN001
    import os
    import time

    from portrait_studio.registry.store import UNDO_SECONDS

    token = registry.delete("local", "grace")
    with pytest.raises(InputError, match="Nothing to undo"):
        registry.undo_delete("mallory", token)
    parked = next(p for p in registry.namespace("local").iterdir() if p.name.endswith(token))
    old = time.time() - UNDO_SECONDS - 5
    os.utime(parked, (old, old))
    LoraRegistry._sweep(registry.namespace("local"))  # every add and delete sweeps like this
    assert not parked.exists()
    with pytest.raises(InputError, match="Nothing to undo"):
        registry.undo_delete("local", token)


def test_a_delete_without_undo_removes_the_files_at_once(registry, likeness) -> None:  # noqa: ANN001
    token = registry.delete("local", "grace", undoable=False)
    assert [p.name for p in registry.namespace("local").iterdir() if p.name != ".lock"] == []
    with pytest.raises(InputError, match="Nothing to undo"):
        registry.undo_delete("local", token)
