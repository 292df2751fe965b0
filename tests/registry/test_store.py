"""LoraRegistry: records, manifests, names and slugs, owners, rename/delete, concurrent writers."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import load_file

from portrait_studio.errors import InputError
from portrait_studio.registry import LoraRegistry, owner_key, slugify, validate_lora_file
from tests.registry.lora_test_files import lora_tensors, write_diffusers, write_kohya

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def registry(tmp_path: Path) -> LoraRegistry:
    return LoraRegistry(tmp_path / "registry")


@pytest.fixture()
def trained_file(tmp_path: Path, base_shapes: dict) -> Path:
    pairs = lora_tensors(base_shapes, text_encoder=False)
    return write_diffusers(tmp_path / "pytorch_lora_weights.safetensors", pairs, style="old")


def _add(registry: LoraRegistry, trained_file: Path, name: str = "Anna", owner: str = "local", **kwargs):  # noqa: ANN202
    fields = dict(
        trigger="sks", class_word="woman", base_model="stable-diffusion-v1-5/stable-diffusion-v1-5@abc123",
        rank=4, steps=400, similarity=0.81,
    )
    fields.update(kwargs)
    return registry.add_trained(owner, name, trained_file, **fields)


def test_add_trained_writes_a_complete_entry(registry: LoraRegistry, trained_file: Path) -> None:
    preview = Image.new("RGB", (32, 32), (200, 10, 10))
    reference = Image.new("RGBA", (16, 16), (0, 0, 200, 128))
    record = _add(registry, trained_file, preview=preview, reference=reference, extra={"random_weights": True})
    assert (record.name, record.slug, record.source) == ("Anna", "anna", "trained")
    assert (record.base_model, record.base_revision) == ("stable-diffusion-v1-5/stable-diffusion-v1-5", "abc123")
    assert record.random_weights is True
    assert record.lora_path.is_file() and record.preview_path and record.reference_path
    assert Image.open(record.preview_path).getpixel((0, 0)) == (200, 10, 10)
    manifest = json.loads((record.folder / "manifest.json").read_text())
    for key in ("name", "slug", "trigger", "class_word", "base_model", "base_revision", "rank", "steps",
                "similarity", "created", "source", "sha256"):
        assert key in manifest, key
    assert manifest["similarity"] == pytest.approx(0.81)
    assert manifest["sha256"] == validate_lora_file(record.lora_path).sha256
    assert registry.get("local", "anna") == record
    # Stored in canonical peft names, same numbers as the training file.
    stored = load_file(str(record.lora_path))
    original = load_file(str(trained_file))
    assert all(k.endswith((".lora_A.weight", ".lora_B.weight")) for k in stored)
    key = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    assert (stored[f"{key}.lora_A.weight"] == original[f"{key}.lora.down.weight"]).all()
    # Nothing half-written is left behind.
    assert [p.name for p in registry.namespace("local").iterdir() if p.name != ".lock"] == ["anna"]


def test_import_kohya_uses_metadata_and_folds_alpha(registry: LoraRegistry, tmp_path: Path, base_shapes: dict) -> None:
    pairs = lora_tensors(base_shapes)
    meta = {"modelspec.title": "Night Style", "modelspec.trigger_phrase": "nstyle", "ss_steps": "1200",
            "ss_sd_model_name": "/home/bob/models/v1-5-pruned.safetensors"}
    source = write_kohya(tmp_path / "night.safetensors", pairs, alpha=2.0, metadata=meta)
    record = registry.import_file("local", source, base_shapes=base_shapes)
    assert (record.name, record.slug, record.trigger, record.steps) == ("Night Style", "night-style", "nstyle", 1200)
    assert record.base_model == "v1-5-pruned.safetensors"  # the uploader's folders are not kept
    assert record.source == "imported" and record.rank == 4
    stored = load_file(str(record.lora_path))
    down, up = pairs["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"]
    key = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"
    assert (stored[f"{key}.lora_A.weight"] == down).all()
    assert stored[f"{key}.lora_B.weight"].allclose(up * 0.5)  # alpha 2 / rank 4 folded in
    conv = stored["unet.mid_block.attentions.0.proj_in.lora_A.weight"]
    assert conv.ndim == 4


def test_import_refusal_leaves_nothing_behind(registry: LoraRegistry, tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04garbage")
    with pytest.raises(InputError, match="pickle"):
        registry.import_file("local", bad)
    assert registry.list("local") == []
    namespace = registry.namespace("local")
    assert not namespace.exists() or [p.name for p in namespace.iterdir()] in ([], [".lock"])


def test_names_are_slugged_and_made_unique(registry: LoraRegistry, trained_file: Path) -> None:
    first = _add(registry, trained_file, name="Émile's Portrait!")
    second = _add(registry, trained_file, name="émile's portrait!")
    assert first.slug == "emile-s-portrait"
    assert (second.name, second.slug) == ("émile's portrait! (2)", "emile-s-portrait-2")
    assert slugify("../../etc/passwd") == "etc-passwd"
    assert slugify("...") == "lora"
    traversal = _add(registry, trained_file, name="../../outside")
    assert traversal.folder.parent == registry.namespace("local")
    assert traversal.slug == "outside"


def test_reference_may_be_an_image_file(registry: LoraRegistry, trained_file: Path, tmp_path: Path) -> None:
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "face.jpg", quality=100)
    record = _add(registry, trained_file, reference=tmp_path / "face.jpg")
    assert record.reference_path is not None and Image.open(record.reference_path).size == (8, 8)
    with pytest.raises(InputError, match="Could not read the image"):
        _add(registry, trained_file, name="Other", reference=trained_file)
    assert [r.slug for r in registry.list("local")] == ["anna"]


def test_bad_names_are_refused(registry: LoraRegistry, trained_file: Path) -> None:
    with pytest.raises(InputError, match="empty"):
        _add(registry, trained_file, name="  \n ")
    with pytest.raises(InputError, match="keep it under"):
        _add(registry, trained_file, name="x" * 200)


def test_get_by_slug_or_name_and_missing(registry: LoraRegistry, trained_file: Path) -> None:
    record = _add(registry, trained_file, name="Big Sister")
    assert registry.get("local", "big-sister") == record
    assert registry.get("local", "BIG SISTER") == record
    with pytest.raises(InputError, match="No LoRA named 'nobody'. Known LoRAs: big-sister"):
        registry.get("local", "nobody")


def test_rename_and_delete(registry: LoraRegistry, trained_file: Path) -> None:
    anna = _add(registry, trained_file, name="Anna")
    bob = _add(registry, trained_file, name="Bob")
    renamed = registry.rename("local", "anna", "Anna Maria")
    assert (renamed.name, renamed.slug) == ("Anna Maria", "anna-maria")
    assert not anna.folder.exists() and renamed.lora_path.is_file()
    assert json.loads((renamed.folder / "manifest.json").read_text())["name"] == "Anna Maria"
    assert renamed.sha256 == anna.sha256 and renamed.created == anna.created
    with pytest.raises(InputError, match="already exists"):
        registry.rename("local", "anna-maria", "bob")
    same_slug = registry.rename("local", "bob", "BOB")
    assert (same_slug.name, same_slug.slug) == ("BOB", "bob")
    registry.delete("local", "Anna Maria")
    assert [r.slug for r in registry.list("local")] == [bob.slug]
    assert not renamed.folder.exists()
    with pytest.raises(InputError):
        registry.delete("local", "anna-maria")


def test_owners_are_isolated(registry: LoraRegistry, trained_file: Path) -> None:
    _add(registry, trained_file, name="Anna", owner="alice@example.com")
    _add(registry, trained_file, name="Anna", owner="../../bob")
    assert [r.name for r in registry.list("alice@example.com")] == ["Anna"]
    assert [r.name for r in registry.list("../../bob")] == ["Anna"]
    assert registry.list("local") == []
    with pytest.raises(InputError):
        registry.get("local", "anna")
    with pytest.raises(InputError):
        registry.delete("mallory", "anna")
    bob_folder = registry.namespace("../../bob")
    assert bob_folder.parent == registry.root / "owners"
    assert bob_folder.name.startswith("h-") and ".." not in bob_folder.name
    assert owner_key("local") == "local"
    for bad in ("", "x" * 300, "a\nb"):
        with pytest.raises(InputError):
            owner_key(bad)


def test_incomplete_folders_are_ignored(registry: LoraRegistry, trained_file: Path) -> None:
    _add(registry, trained_file, name="Anna")
    namespace = registry.namespace("local")
    (namespace / "half").mkdir()
    (namespace / "half" / "lora.safetensors").write_bytes(b"partial")
    (namespace / "broken").mkdir()
    (namespace / "broken" / "manifest.json").write_text("{not json")
    (namespace / "broken" / "lora.safetensors").write_bytes(b"x")
    assert [r.slug for r in registry.list("local")] == ["anna"]


def test_concurrent_thread_imports_get_unique_slugs(registry: LoraRegistry, tmp_path: Path, base_shapes: dict) -> None:
    sources = [write_kohya(tmp_path / f"same-{i}.safetensors", lora_tensors(base_shapes, seed=i), alpha=4,
                           metadata={"modelspec.title": "Twin"}) for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        records = list(pool.map(lambda p: registry.import_file("local", p), sources))
    slugs = sorted(r.slug for r in records)
    assert slugs == sorted(["twin"] + [f"twin-{n}" for n in range(2, 9)])
    listed = registry.list("local")
    assert len(listed) == 8
    for record in listed:  # every entry is whole and its file matches its manifest
        assert validate_lora_file(record.lora_path).sha256 == record.sha256
    leftovers = [p.name for p in registry.namespace("local").iterdir() if p.name.startswith(".") and p.name != ".lock"]
    assert leftovers == []


_WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from portrait_studio.registry import LoraRegistry
    registry = LoraRegistry(Path(sys.argv[1]))
    for source in sys.argv[2:]:
        registry.import_file("local", Path(source), name="Twin")
    """
)


def test_concurrent_process_imports_get_unique_slugs(registry: LoraRegistry, tmp_path: Path, base_shapes: dict) -> None:
    sources = [write_kohya(tmp_path / f"p-{i}.safetensors", lora_tensors(base_shapes, seed=i), alpha=4)
               for i in range(6)]
    workers = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(registry.root), *map(str, sources[i::2])], cwd=REPO)
        for i in range(2)
    ]
    # Meanwhile this process writes too.
    local = [registry.import_file("local", sources[0], name="Twin") for _ in range(2)]
    assert all(worker.wait(timeout=120) == 0 for worker in workers)
    listed = registry.list("local")
    assert len(listed) == 8
    assert len({r.slug for r in listed}) == 8 and len({r.name for r in listed}) == 8
    assert {r.slug for r in local} <= {r.slug for r in listed}
    for record in listed:
        assert validate_lora_file(record.lora_path).sha256 == record.sha256
        assert json.loads((record.folder / "manifest.json").read_text())["slug"] == record.slug
