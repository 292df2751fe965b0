"""Real loaders on tiny models saved to disk; offline errors; component sharing and fresh schedulers."""

from pathlib import Path

import pytest
import torch

from portrait_studio.config import settings_from_env
from portrait_studio.errors import CancelledError, InputError, MissingWeightsError
from portrait_studio.models.locator import ModelLocator, is_random_weights
from portrait_studio.progress import CancelToken
from portrait_studio.stylize.generate import GenerateRequest, generate


def test_tiny_base_is_a_diffusers_folder_marked_random(tiny_manager) -> None:
    path = tiny_manager.locator.path("base")
    for part in ("model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                 "vae/config.json", "text_encoder/model.safetensors", "tokenizer/vocab.json",
                 "scheduler/scheduler_config.json"):
        assert (path / part).is_file(), part
    assert is_random_weights(path)
    assert tiny_manager.sd_info().random_weights


def test_tokenizer_pads_to_77(tiny_manager) -> None:
    tokenizer = tiny_manager.sd_components()["tokenizer"]
    ids = tokenizer("a studio portrait of a person", padding="max_length", truncation=True).input_ids
    assert len(ids) == 77


def test_missing_weights_offline_names_role_repo_and_command(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    settings = settings_from_env({}, home=tmp_path / "home", offline=True)
    with pytest.raises(MissingWeightsError) as err:
        ModelLocator(settings).path("base")
    message = str(err.value)
    assert "'base'" in message
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5" in message
    assert "python -m portrait_studio download --roles base" in message


def test_release_file_roles_report_the_url_when_missing(tmp_path: Path) -> None:
    settings = settings_from_env({}, home=tmp_path, offline=True)
    with pytest.raises(MissingWeightsError, match="GFPGANv1.4.pth"):
        ModelLocator(settings).path("gfpgan")


def test_local_override_path_is_used_as_is(tmp_path: Path, tiny_manager) -> None:
    base = tiny_manager.locator.path("base")
    settings = settings_from_env({"PORTRAIT_STUDIO_MODEL_BASE": str(base)}, home=tmp_path, offline=True)
    assert ModelLocator(settings).path("base") == base


def test_unknown_role_is_a_clear_error(tiny_manager) -> None:
    with pytest.raises(InputError, match="Unknown model role 'nope'"):
        tiny_manager.locator.path("nope")


def test_pipelines_share_cached_components_and_get_fresh_schedulers(tiny_manager) -> None:
    loads_before = tiny_manager.cache.stats.loads
    with tiny_manager.sd_pipeline("txt2img") as txt2img:
        unet, vae, text_encoder, scheduler = txt2img.unet, txt2img.vae, txt2img.text_encoder, txt2img.scheduler
    loads_after_first = tiny_manager.cache.stats.loads
    with tiny_manager.sd_pipeline("img2img") as img2img:
        assert img2img.unet is unet and img2img.vae is vae and img2img.text_encoder is text_encoder
        assert img2img.scheduler is not scheduler
    # The second pipeline loaded nothing new.
    assert tiny_manager.cache.stats.loads == loads_after_first
    assert loads_after_first - loads_before in (0, 4)


def test_generation_is_seeded_and_marked_random(tiny_manager) -> None:
    request = GenerateRequest("portrait of a woman", seed=7, steps=2, n=2)
    first = generate(tiny_manager, request)
    second = generate(tiny_manager, request)
    assert [i.seed for i in first.images] == [7, 8]
    assert first.random_weights and first.warnings
    a = torch.tensor(list(first.images[0].image.getdata()), dtype=torch.float32)
    b = torch.tensor(list(second.images[0].image.getdata()), dtype=torch.float32)
    c = torch.tensor(list(first.images[1].image.getdata()), dtype=torch.float32)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert first.images[0].metadata["seed"] == 7 and first.images[0].metadata["random_weights"] is True


def test_cancel_stops_within_one_step(tiny_manager) -> None:
    token = CancelToken()
    seen: list[float] = []

    def progress(fraction: float, message: str = "") -> None:
        seen.append(fraction)
        if fraction >= 0.2:
            token.cancel()

    with pytest.raises(CancelledError):
        generate(tiny_manager, GenerateRequest("x", seed=1, steps=10), progress=progress, cancel=token)
    step_reports = [f for f in seen if 0 < f < 1]
    assert step_reports[-1] == pytest.approx(0.2)  # stopped right after the step that saw the cancel


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prompt": "  "}, "prompt is empty"),
        ({"steps": 0}, "Steps"),
        ({"n": 9}, "Number of images"),
        ({"width": 100}, "multiple of 8"),
        ({"sampler": "magic"}, "Unknown sampler"),
    ],
)
def test_bad_requests_get_specific_errors(tiny_manager, changes, message) -> None:
    request = GenerateRequest("ok", seed=1, steps=2)
    for key, value in changes.items():
        setattr(request, key, value)
    with pytest.raises(InputError, match=message):
        generate(tiny_manager, request)


def test_preload_places_the_base_components_in_the_cache(tiny_settings) -> None:
    from portrait_studio.models.manager import ModelManager

    manager = ModelManager(tiny_settings)
    keys = manager.preload("base")
    assert keys == ["base:unet", "base:vae", "base:text_encoder", "base:tokenizer"]
    assert all(key in manager.cache for key in keys)
    assert not any(manager.cache.is_locked(key) for key in keys)
    loads = manager.cache.stats.loads
    with manager.sd_pipeline("txt2img"):
        pass
    assert manager.cache.stats.loads == loads  # the first request found everything warm


def test_preload_every_tab_leaves_nothing_for_a_request_to_load(tiny_settings, tmp_path, monkeypatch) -> None:
    """ZeroGPU start-up: after it, Animate, anime and the talk networks find every model in the cache."""
    from PIL import Image

    import portrait_studio.faces.restore as restore
    from portrait_studio.models.process_cache import process_cache

    def ran(*_args, **_kwargs) -> None:
        raise AssertionError("start-up ran a face model instead of only loading it")

    monkeypatch.setattr(restore, "_restore_in", ran)  # a random detector finds faces even in a black image

    from portrait_studio.animate import models
    from portrait_studio.animate.request import AnimateRequest
    from portrait_studio.animate.service import animate
    from portrait_studio.models.manager import ModelManager
    from portrait_studio.preload import GROUPS, preload_every_tab
    from portrait_studio.stylize.anime import STYLES, anime_portrait
    from portrait_studio.talk.engine import talk_nets

    manager = ModelManager(tiny_settings)
    report = preload_every_tab(manager)
    assert report.skipped == {}
    assert set(GROUPS) == {"stylize", "controlnets", "animate", "anime", "talk", "aniportrait", "faces"}
    expected = ["aniportrait:nets", "vae_ft_mse:vae", "aniportrait_image_encoder:image_encoder",
                "base:unet", "controlnet_canny:model", "controlnet_openpose:model", models.motion_unet_key(),
                *(f"animegan_{style}:generator" for style in STYLES), "sadtalker256:generator",
                "sadtalker512:generator", "sadtalker:mapping_full"]
    assert [key for key in expected if key not in manager.cache] == []
    face_keys = [key for key in report.placed if key.startswith(("gfpgan:", "face_restore_helper:"))]
    assert len(face_keys) == 2 and all(key in process_cache(tiny_settings) for key in face_keys)
    monkeypatch.undo()
    loads = manager.cache.stats.loads
    animate(manager, AnimateRequest("a portrait", frames=2, steps=1, width=32, height=32, seed=1), tmp_path)
    anime_portrait(Image.new("RGB", (64, 64)), tiny_settings, style=STYLES[-1], mode="full", size=64, manager=manager)
    with talk_nets(manager, 512, "crop"):
        pass
    assert manager.cache.stats.loads == loads  # nothing was loaded inside a request
