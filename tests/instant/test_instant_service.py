"""Instant likenesses through the services: the cached UNets come back as they were after every request."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from portrait_studio.animate import models
from portrait_studio.animate.request import AnimateRequest, Likeness
from portrait_studio.animate.service import animate
from portrait_studio.errors import InputError
from portrait_studio.instant.create import create_instant
from portrait_studio.registry import LoraRegistry
from portrait_studio.stylize.request import StylizeRequest
from portrait_studio.stylize.service import stylize
from tests.instant.conftest import assert_unchanged, processors_and_state


@pytest.fixture(scope="module")
def registry(tiny_settings) -> LoraRegistry:
    return LoraRegistry(tiny_settings.registry_dir)


@pytest.fixture(scope="module")
def ada(tiny_manager, tiny_settings, registry, package_photos):
    return create_instant(tiny_manager, tiny_settings, "Ada", [package_photos["grace"]], owner="owner-a",
                          registry=registry).record


def test_instant_entry_lives_in_its_owners_namespace(ada, registry) -> None:
    assert ada.is_instant and ada.instant_path.is_file() and ada.reference_path is not None
    assert ada.identity_path is not None and ada.extra["face_backend"] == "dlib" and ada.extra["faces"] == 1
    assert [r.slug for r in registry.list("owner-a")] == [ada.slug]
    assert registry.list("owner-b") == []
    with pytest.raises(InputError, match="No LoRA named"):
        registry.get("owner-b", "Ada")


def test_stylize_best_of_with_instant_leaves_the_cached_unet_as_it_was(tiny_manager, tiny_settings, registry,
                                                                       ada) -> None:
    unet = tiny_manager.sd_components("base", ("unet",))["unet"]
    before = processors_and_state(unet)
    request = StylizeRequest(prompt="portrait", likeness="Ada", n=2, best_of=True, steps=2, seed=4)
    result = stylize(tiny_manager, request, tiny_settings, registry, owner="owner-a")
    assert len(result.images) == 2 and all(item.score is not None for item in result.images)
    assert result.images[0].metadata["likeness_kind"] == "instant"
    assert_unchanged(unet, before)
    # The adapter does something: strength 0 gives another picture from the same seed.
    off = stylize(tiny_manager, StylizeRequest(prompt="portrait", likeness="Ada", face_strength=0.0, steps=2,
                                               seed=4), tiny_settings, registry, owner="owner-a")
    on = stylize(tiny_manager, StylizeRequest(prompt="portrait", likeness="Ada", steps=2, seed=4),
                 tiny_settings, registry, owner="owner-a")
    difference = np.abs(np.asarray(on.images[0].image, int) - np.asarray(off.images[0].image, int))
    assert difference.mean() > 1.0
    assert_unchanged(unet, before)


def test_trained_likeness_can_add_the_adapter_on_its_reference_face(tiny_manager, tiny_settings, registry,
                                                                     tmp_path: Path, package_photos) -> None:
    from tests.stylize.stylize_helpers import register_likeness

    owner_registry = LoraRegistry(tmp_path / "registry")
    with Image.open(package_photos["grace"]) as photo:
        register_likeness(owner_registry, tiny_manager, tmp_path / "files", "Grace", reference=photo.convert("RGB"))
    unet = tiny_manager.sd_components("base", ("unet",))["unet"]
    before = processors_and_state(unet)
    both = stylize(tiny_manager, StylizeRequest(prompt="portrait", likeness="Grace", face_strength=0.6, steps=2,
                                                seed=2), tiny_settings, owner_registry)
    lora_only = stylize(tiny_manager, StylizeRequest(prompt="portrait", likeness="Grace", steps=2, seed=2),
                        tiny_settings, owner_registry)
    assert both.images[0].metadata["face_strength"] == 0.6 and lora_only.images[0].metadata["face_strength"] is None
    assert both.images[0].metadata["likeness_weight"] == 0.9
    assert np.abs(np.asarray(both.images[0].image, int) - np.asarray(lora_only.images[0].image, int)).mean() > 1.0
    assert_unchanged(unet, before)


def test_instant_is_not_a_style_lora(tiny_manager, tiny_settings, registry, ada) -> None:
    with pytest.raises(InputError, match="not a style LoRA"):
        stylize(tiny_manager, StylizeRequest(prompt="x", style_loras=[("Ada", 0.5)], steps=1), tiny_settings,
                registry, owner="owner-a")


def test_animate_with_instant_leaves_the_motion_unet_as_it_was(tiny_manager, registry, ada, tmp_path: Path) -> None:
    unet_motion = models.motion_unet(tiny_manager)
    before = processors_and_state(unet_motion)
    record = registry.get("owner-a", "Ada")
    request = AnimateRequest("smiling", likeness=Likeness.from_record(record, face_strength=0.8), frames=8, steps=2,
                             width=32, height=32, seed=3)
    result = animate(tiny_manager, request, tmp_path)
    assert result.mp4_path.is_file() and result.metadata["likeness_kind"] == "instant"
    assert result.metadata["face_strength"] == 0.8 and result.metadata["prompt"] == "smiling"
    assert models.motion_unet(tiny_manager) is unet_motion
    assert_unchanged(unet_motion, before)


def test_template_portrait_with_instant_leaves_the_cached_unet_as_it_was(tiny_manager, tiny_settings, registry,
                                                                         ada, package_photos) -> None:
    unet = tiny_manager.sd_components("base", ("unet",))["unet"]
    before = processors_and_state(unet)
    with Image.open(package_photos["grace"]) as photo:
        template = photo.convert("RGB").resize((256, 300))
    request = StylizeRequest(prompt="oil painting", likeness="Ada", template=template, control="none", steps=2,
                             seed=1, denoise=0.5)
    result = stylize(tiny_manager, request, tiny_settings, registry, owner="owner-a")
    assert result.images[0].metadata["mode"] == "template" and result.images[0].metadata["face_strength"] == 0.7
    assert result.images[0].image.size == template.size
    assert_unchanged(unet, before)


def test_best_of_scores_instant_and_trained_against_the_stored_identity_centre(tiny_settings, tiny_manager,
                                                                               registry, ada) -> None:
    from portrait_studio.stylize.best_of import likeness_scorer
    from portrait_studio.stylize.likeness import resolve_likeness

    likeness = resolve_likeness(tiny_settings, registry, "owner-a", "Ada", tiny_manager.sd_info())
    scorer = likeness_scorer(tiny_settings, likeness)
    centre = np.load(ada.identity_path)
    assert scorer.backend.name == "dlib"
    assert np.allclose(scorer.reference, centre / np.linalg.norm(centre))


def test_side_by_side_renders_one_seed_with_both_likenesses_and_scores_each(tiny_manager, tiny_settings, registry,
                                                                            ada, tmp_path: Path) -> None:
    from portrait_studio.stylize.compare import side_by_side
    from tests.stylize.stylize_helpers import make_lora_file

    registry.add_trained("owner-a", "Ada trained", make_lora_file(tiny_manager, tmp_path / "lora"), trigger="pszkvq",
                         class_word="person", base_model=tiny_manager.sd_info().base_id, rank=4, steps=2,
                         similarity=None, reference=ada.reference_path, identity=np.load(ada.identity_path),
                         extra={"face_backend": "dlib"}, random_weights=True)
    pair = side_by_side(tiny_manager, StylizeRequest(prompt="portrait", steps=2), tiny_settings,
                        ("Ada", "Ada trained"), registry, owner="owner-a")
    assert [item.metadata["likeness_kind"] for item in pair] == ["instant", "lora"]
    assert pair[0].seed == pair[1].seed and all(item.score is not None for item in pair)
    with pytest.raises(InputError, match="two different likenesses"):
        side_by_side(tiny_manager, StylizeRequest(prompt="x"), tiny_settings, ("Ada", "ada"), registry,
                     owner="owner-a")
