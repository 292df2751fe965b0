from __future__ import annotations

import pytest

from portrait_studio.errors import InputError
from portrait_studio.likeness.config import PRESETS, TrainingConfig, preset_config, unique_trigger


def test_balanced_preset_follows_easyphoto_defaults() -> None:
    config = preset_config("Balanced", n_images=3)
    assert (config.resolution, config.batch_size, config.grad_accum) == (512, 1, 4)
    assert (config.learning_rate, config.lr_schedule, config.rank, config.alpha) == (1e-4, "constant", 128, 64)
    assert config.steps == 600  # min(3 * 200, 800)
    assert preset_config("Balanced", n_images=10).steps == 800
    assert config.checkpoint_every == 100 and config.top_k == 10
    assert config.flip is True and config.train_text_encoder is True  # EasyPhoto trains a text-encoder LoRA too
    assert config.text_encoder_lr == 5e-5 and config.vary_captions


def test_presets_order_by_effort() -> None:
    quick, balanced, best = (preset_config(name, n_images=8) for name in PRESETS)
    assert quick.steps < balanced.steps < best.steps
    assert quick.rank < balanced.rank
    assert best.train_text_encoder and balanced.train_text_encoder and not quick.train_text_encoder


def test_overrides_keep_checkpoints_within_steps() -> None:
    config = preset_config("Balanced", n_images=5, steps=40, resolution=64)
    assert config.steps == 40 and config.checkpoint_every == 40 and config.resolution == 64
    assert config.checkpoint_steps() == [40]
    assert TrainingConfig(steps=250, checkpoint_every=100).checkpoint_steps() == [100, 200, 250]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"steps": 0}, "steps"),
        ({"resolution": 500}, "resolution"),
        ({"rank": 0}, "rank"),
        ({"learning_rate": 0.5}, "learning_rate"),
        ({"trigger": "Has Space"}, "trigger"),
        ({"caption": "a photo of a {class_word}"}, "caption"),
        ({"caption": "{trigger} {nonsense}"}, "caption"),
        ({"mixed_precision": "fp8"}, "mixed_precision"),
        ({"checkpoint_every": 900}, "checkpoint_every"),
        ({"validation_seeds": ()}, "validation_seeds"),
    ],
)
def test_validation_names_the_bad_field(changes: dict, field: str) -> None:
    with pytest.raises(InputError, match=f"'{field}'"):
        TrainingConfig(**changes).validate()


def test_unknown_preset_and_empty_dataset_are_input_errors() -> None:
    with pytest.raises(InputError, match="Unknown training preset 'Huge'"):
        preset_config("Huge", 5)
    with pytest.raises(InputError, match="at least one face crop"):
        preset_config("Quick", 0)


def test_round_trip_through_job_json() -> None:
    config = preset_config("Max", 6, trigger="psabcd", mask_loss=True)
    again = TrainingConfig.from_dict(config.to_dict())
    assert again == config
    with pytest.raises(InputError, match="Unknown training setting"):
        TrainingConfig.from_dict({**config.to_dict(), "learning_rat": 1})


def test_unique_trigger_is_stable_and_valid() -> None:
    first = unique_trigger("alice/Me")
    assert first == unique_trigger("alice/Me") and first != unique_trigger("bob/Me")
    TrainingConfig(trigger=first).validate()
    assert TrainingConfig(trigger=first).caption_text() == f"a photo of {first} person"


def test_captions_vary_and_all_carry_the_trigger() -> None:
    config = TrainingConfig(trigger="pszkvq", class_word="woman")
    texts = config.caption_texts()
    assert texts[0] == "a photo of pszkvq woman" and len(set(texts)) == len(texts) >= 4
    assert all("pszkvq woman" in text for text in texts)
    assert TrainingConfig(trigger="pszkvq", vary_captions=False).caption_texts() == ["a photo of pszkvq person"]


def test_pick_trigger_avoids_taken_and_generic_triggers() -> None:
    from portrait_studio.likeness.config import pick_trigger

    first = pick_trigger("local/Ada")
    assert first == unique_trigger("local/Ada") and first not in {"ohwx", "sks"}
    second = pick_trigger("local/Ada", {first})  # the same name trained again gets another trigger
    assert second != first and second.startswith("ps")
    assert pick_trigger("local/Ada", {first.upper()}) == second


def test_unet_targets_cover_every_linear_layer_of_the_transformer_blocks() -> None:
    import torch
    from diffusers import UNet2DConditionModel

    from portrait_studio.likeness.setup import TEXT_TARGETS, UNET_TARGETS
    from portrait_studio.models.tiny import tiny_unet_kwargs

    with torch.device("meta"):
        unet = UNet2DConditionModel(**tiny_unet_kwargs())
    in_blocks = {name for name, module in unet.named_modules()
                 if ".attentions." in name and isinstance(module, torch.nn.Linear | torch.nn.Conv2d)
                 and (isinstance(module, torch.nn.Linear) or module.kernel_size == (1, 1))}
    targeted = {name for name in in_blocks if any(name == t or name.endswith("." + t) for t in UNET_TARGETS)}
    assert in_blocks and targeted == in_blocks
    assert {"fc1", "fc2", "q_proj", "out_proj"} <= set(TEXT_TARGETS)
