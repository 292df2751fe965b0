"""The Stylize service on the tiny profile: likeness portraits, LoRAs on and off, best-of, restore, cancel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from portrait_studio.config import Settings
from portrait_studio.errors import CancelledError, InputError, MissingWeightsError
from portrait_studio.models.manager import ModelManager
from portrait_studio.progress import CancelToken
from portrait_studio.stylize import service
from portrait_studio.stylize.best_of import rank, reference_scorer
from portrait_studio.stylize.generate import GeneratedImage
from portrait_studio.stylize.request import StylizeRequest
from portrait_studio.stylize.service import stylize
from tests.stylize.stylize_helpers import (  # noqa: F401 - one_torch_thread is an autouse fixture
    assert_bit_identical,
    coffee,
    grace_hopper,
    one_torch_thread,
    register_likeness,
    snapshot,
)

FAST = dict(steps=2, seed=11)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, tiny_manager: ModelManager):  # noqa: ANN201
    from portrait_studio.registry import LoraRegistry

    root = tmp_path_factory.mktemp("stylize_registry")
    store = LoraRegistry(root / "registry")
    register_likeness(store, tiny_manager, root / "files", "Grace", reference=grace_hopper(), seed=1)
    register_likeness(store, tiny_manager, root / "files", "Elsewhere", base_model="someone/other-model@main")
    register_likeness(store, tiny_manager, root / "files", "No reference", seed=2)
    style_file = register_likeness(store, tiny_manager, root / "files", "tmp-style", seed=3).lora_path
    store.import_file("local", style_file, name="Ink style")
    return store


def pixels(image) -> np.ndarray:  # noqa: ANN001
    return np.asarray(image, dtype=np.int16)


def base_snapshots(manager: ModelManager) -> dict:
    manager.sd_components()
    return {key: snapshot(manager.cache.get(key, lambda: None)) for key in ("base:unet", "base:text_encoder")}


def assert_base_untouched(manager: ModelManager, before: dict) -> None:
    for key, tensors in before.items():
        assert_bit_identical(manager.cache.get(key, lambda: None), tensors)


def test_likeness_portrait_from_a_preset(tiny_manager, tiny_settings, registry) -> None:  # noqa: ANN001
    seen: list[tuple[float, str]] = []
    request = StylizeRequest(preset="watercolor", likeness="Grace", n=2, **FAST)
    result = stylize(tiny_manager, request, tiny_settings, registry, progress=lambda f, m="": seen.append((f, m)))
    assert [item.seed for item in result.images] == [11, 12]
    assert all(item.image.size == (64, 80) for item in result.images)  # 512x640 preset on the 64 px tiny model
    meta = result.images[0].metadata
    assert "watercolor painting of sks woman" in meta["prompt"]
    assert meta["preset"] == "watercolor" and meta["likeness"] == "Grace" and meta["likeness_weight"] == 0.9
    assert meta["model"] == tiny_manager.sd_info().base_id and meta["mode"] == "txt2img"
    assert result.random_weights and meta["random_weights"] and "random-weight" in result.warnings[0]
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert sum("step" in m for _, m in seen) == 4  # every denoising step of both images is reported


def test_loras_are_applied_for_the_request_then_removed_bit_identical(
    tiny_manager, tiny_settings, registry, monkeypatch  # noqa: ANN001
) -> None:
    before = base_snapshots(tiny_manager)
    plain = stylize(tiny_manager, StylizeRequest(prompt="sks woman, portrait", **FAST), tiny_settings, registry)
    with_lora = stylize(
        tiny_manager,
        StylizeRequest(prompt="portrait", likeness="Grace", likeness_weight=1.5, style_loras=[("Ink style", 0.7)],
                       **FAST),
        tiny_settings, registry,
    )
    assert with_lora.images[0].metadata["style_loras"] == [("Ink style", 0.7)]
    assert with_lora.images[0].metadata["prompt"] == "sks woman, portrait"
    # Same prompt and seed: only the LoRAs differ, and they change the picture.
    assert np.abs(pixels(plain.images[0].image) - pixels(with_lora.images[0].image)).max() > 0
    assert_base_untouched(tiny_manager, before)
    # The fused path (used on GPUs) restores the exact base weights too.
    monkeypatch.setattr(service, "should_fuse", lambda manager: True)
    fused = stylize(tiny_manager, StylizeRequest(prompt="portrait", likeness="Grace", likeness_weight=1.5,
                                                 style_loras=[("Ink style", 0.7)], **FAST), tiny_settings, registry)
    assert np.abs(pixels(fused.images[0].image) - pixels(with_lora.images[0].image)).max() <= 2
    assert_base_untouched(tiny_manager, before)
    again = stylize(tiny_manager, StylizeRequest(prompt="sks woman, portrait", **FAST), tiny_settings, registry)
    assert np.array_equal(pixels(again.images[0].image), pixels(plain.images[0].image))


def test_cancel_stops_within_a_step_and_still_removes_the_loras(tiny_manager, tiny_settings, registry) -> None:  # noqa: ANN001
    before = base_snapshots(tiny_manager)
    token = CancelToken()
    steps: list[str] = []

    def progress(fraction: float, message: str = "") -> None:
        if "step" in message:
            steps.append(message)
            token.cancel()

    request = StylizeRequest(prompt="portrait", likeness="Grace", n=3, steps=5, seed=1)
    with pytest.raises(CancelledError):
        stylize(tiny_manager, request, tiny_settings, registry, progress=progress, cancel=token)
    assert steps == ["image 1/3, step 1/5"]
    assert_base_untouched(tiny_manager, before)


def test_a_cancel_after_the_first_image_keeps_it_and_says_so(tiny_manager, tiny_settings, registry) -> None:  # noqa: ANN001
    token = CancelToken()

    def progress(fraction: float, message: str = "") -> None:
        if message.startswith("image 2/3"):
            token.cancel()  # during the second image: the first is finished

    request = StylizeRequest(prompt="portrait", n=3, steps=2, seed=5)
    result = stylize(tiny_manager, request, tiny_settings, registry, progress=progress, cancel=token)
    assert result.cancelled and [item.seed for item in result.images] == [5]
    assert any("Cancelled after 1 of 3 images" in w for w in result.warnings)
    whole = stylize(tiny_manager, StylizeRequest(prompt="portrait", n=1, steps=2, seed=5), tiny_settings, registry)
    assert np.array_equal(pixels(result.images[0].image), pixels(whole.images[0].image))  # the kept one is whole
    assert not whole.cancelled


def test_likeness_from_another_base_model_is_refused(tiny_manager, tiny_settings, registry) -> None:  # noqa: ANN001
    with pytest.raises(InputError) as err:
        stylize(tiny_manager, StylizeRequest(prompt="x", likeness="Elsewhere", **FAST), tiny_settings, registry)
    message = str(err.value)
    assert "'Elsewhere'" in message and "someone/other-model" in message
    assert tiny_manager.sd_info().base_id in message and "train the likeness again" in message


def test_unknown_likeness_and_bad_values_are_input_errors(tiny_manager, tiny_settings, registry) -> None:  # noqa: ANN001
    cases = [
        (StylizeRequest(prompt="x", likeness="Nobody"), "No LoRA named 'Nobody'"),
        (StylizeRequest(), "Choose a style preset or write a prompt"),
        (StylizeRequest(prompt="x", likeness_weight=float("inf"), likeness="Grace"), "Likeness weight"),
        (StylizeRequest(prompt="x", best_of=True), "choose a likeness first"),
        (StylizeRequest(prompt="x", n=20), "between 1 and 8"),
        (StylizeRequest(prompt="x", style_loras=[("Ink style", "lots")]), "must be a number"),
        (StylizeRequest(preset="nope"), "Unknown style preset"),
    ]
    for request, expected in cases:
        with pytest.raises(InputError, match=expected):
            stylize(tiny_manager, request, tiny_settings, registry)


def test_rank_orders_real_photos_by_face_similarity(tiny_settings: Settings, tmp_path: Path) -> None:
    reference = tmp_path / "reference.png"
    grace_hopper().save(reference)
    from PIL import Image
    from skimage import data

    candidates = [
        GeneratedImage(coffee(), 1, {}),
        GeneratedImage(Image.fromarray(data.astronaut()), 2, {}),
        GeneratedImage(grace_hopper().transpose(Image.Transpose.FLIP_LEFT_RIGHT), 3, {}),
    ]
    ranked = rank(candidates, reference_scorer(tiny_settings, reference, "Grace"))
    assert [item.seed for item in ranked] == [3, 2, 1]
    assert ranked[0].score > 0.6 > ranked[1].score and ranked[2].score == 0.0
    assert [item.metadata["rank"] for item in ranked] == [1, 2, 3]
    assert ranked[0].metadata["score"] == ranked[0].score


def test_best_of_scores_every_image_best_first(tiny_manager, tiny_settings, registry) -> None:  # noqa: ANN001
    result = stylize(tiny_manager, StylizeRequest(prompt="portrait", likeness="Grace", n=2, best_of=True, **FAST),
                     tiny_settings, registry)
    scores = [item.score for item in result.images]
    assert all(score is not None and 0.0 <= score <= 1.0 for score in scores)
    assert scores == sorted(scores, reverse=True)
    assert [item.metadata["rank"] for item in result.images] == [1, 2]
    with pytest.raises(InputError, match="no reference face"):
        stylize(tiny_manager, StylizeRequest(prompt="p", likeness="No reference", best_of=True, **FAST),
                tiny_settings, registry)


def test_restore_runs_on_every_image_and_missing_gfpgan_fails_before_generating(
    tiny_manager, tiny_settings, registry, tmp_path, monkeypatch  # noqa: ANN001
) -> None:
    offline = tiny_settings.replace(offline=True, model_overrides={"gfpgan": str(tmp_path / "no-gfpgan")})
    seen: list[str] = []
    with pytest.raises(MissingWeightsError, match="'gfpgan'"):
        stylize(ModelManager(offline), StylizeRequest(prompt="p", restore=0.5, **FAST), offline, registry,
                progress=lambda f, m="": seen.append(m))
    assert not any("step" in m for m in seen)

    calls: list[float] = []
    monkeypatch.setattr(service, "_preflight_restore", lambda settings: False)
    monkeypatch.setattr(service, "_restore", lambda image, settings, strength: calls.append(strength) or image)
    result = stylize(tiny_manager, StylizeRequest(prompt="p", restore=0.4, n=2, **FAST), tiny_settings, registry)
    assert calls == [0.4, 0.4] and result.images[0].metadata["restore"] == 0.4


def test_base_model_comparison_ignores_revision_and_known_mirrors() -> None:
    from types import SimpleNamespace

    from portrait_studio.stylize.likeness import check_same_base

    info = SimpleNamespace(base_id="stable-diffusion-v1-5/stable-diffusion-v1-5@main")
    for trained_on in ("stable-diffusion-v1-5/stable-diffusion-v1-5", "runwayml/stable-diffusion-v1-5@abc", ""):
        check_same_base(SimpleNamespace(name="me", base_model=trained_on, source="trained"), info)
    check_same_base(SimpleNamespace(name="ink", base_model="", source="imported"), info)
    with pytest.raises(InputError, match="was trained on the base model 'someone/sd-finetune'"):
        check_same_base(SimpleNamespace(name="me", base_model="someone/sd-finetune", source="trained"), info)
    with pytest.raises(InputError, match="different model family"):
        check_same_base(SimpleNamespace(name="ink", base_model="sdxl_base_v1.0", source="imported"), info)
