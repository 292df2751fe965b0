"""Preset previews: never a random model's output; made once with real weights and then read back."""

from __future__ import annotations

import numpy as np

from portrait_studio.stylize import preset_previews
from portrait_studio.stylize.preset_previews import preset_preview, previews_dir
from tests.stylize.stylize_helpers import one_torch_thread  # noqa: F401 - autouse fixture


def test_the_tiny_profile_gets_a_labelled_card_not_noise(tiny_manager, tiny_settings) -> None:  # noqa: ANN001
    found = preset_preview(tiny_manager, tiny_settings, "watercolor")
    assert found.real is False and "real base model" in found.note
    assert found.image.size == (256, 256)
    assert not list(previews_dir(tiny_settings).glob("watercolor-*.png"))  # nothing generated, nothing stored


def test_with_real_weights_the_preview_is_made_once(tiny_manager, tiny_settings, monkeypatch) -> None:  # noqa: ANN001
    # Real weights cannot be downloaded here: the tiny model stands in for them (plumbing, not quality).
    monkeypatch.setattr(preset_previews, "real_base_weights", lambda manager: True)
    monkeypatch.setattr(preset_previews, "PREVIEW_STEPS", 2)
    assert preset_preview(tiny_manager, tiny_settings, "film-noir", make=False).note == "not made yet."
    made = preset_preview(tiny_manager, tiny_settings, "film-noir")
    assert made.real and list(previews_dir(tiny_settings).glob("film-noir-*.png"))

    def no_second_run(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the stored preview should have been used")

    monkeypatch.setattr(preset_previews, "_generate", no_second_run)
    again = preset_preview(tiny_manager, tiny_settings, "film-noir")
    assert again.real and np.array_equal(np.asarray(again.image), np.asarray(made.image))
