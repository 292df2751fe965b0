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
    assert config.flip is True and config.train_text_encoder is False


def test_presets_order_by_effort() -> None:
    quick, balanced, best = (preset_config(name, n_images=8) for name in PRESETS)
    assert quick.steps < balanced.steps < best.steps
    assert quick.rank < balanced.rank
    assert best.train_text_encoder and not quick.train_text_encoder


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
