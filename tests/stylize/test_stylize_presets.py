"""Style presets: the shipped set, user files, and clear errors (file, field, problem) for broken ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portrait_studio.config import Settings
from portrait_studio.errors import InputError
from portrait_studio.stylize.presets import (
    BUILTIN_DIR,
    get_preset,
    list_presets,
    load_preset_file,
    preset_catalogue,
    user_styles_dir,
)
from portrait_studio.stylize.request import StylizeRequest, build_generation, compose_prompt

GOOD = {"title": "Mine", "prompt": "portrait of {subject} in the rain", "steps": 20, "width": 512, "height": 768}


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", profile="tiny")


def write(folder: Path, name: str, data: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_shipped_presets_are_valid_and_cover_the_hobbyist_favourites(settings: Settings) -> None:
    files = sorted(BUILTIN_DIR.glob("*.json"))
    presets = list_presets(settings)
    assert len(presets) == len(files) >= 12
    ids = {p.id for p in presets}
    for wanted in ("studio-headshot", "film-portrait", "watercolor", "oil-painting", "comic", "cyberpunk",
                   "fantasy-armor"):
        assert wanted in ids
    assert len({p.title for p in presets}) == len(presets)
    for preset in presets:
        assert preset.builtin and "{subject}" in preset.prompt
        rendered = preset.render_prompt("sks woman")
        assert "sks woman" in rendered and "{subject}" not in rendered
        assert preset.negative_prompt and 1 <= preset.steps <= 150


def test_user_presets_are_listed_and_can_replace_a_builtin(settings: Settings) -> None:
    folder = user_styles_dir(settings)
    write(folder, "rainy", GOOD)
    write(folder, "watercolor", {**GOOD, "title": "My watercolor"})
    presets = {p.id: p for p in list_presets(settings)}
    assert presets["rainy"].title == "Mine" and not presets["rainy"].builtin
    assert presets["watercolor"].title == "My watercolor" and not presets["watercolor"].builtin
    assert get_preset(settings, "mine").id == "rainy"  # by title, case-insensitive


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        ("{not json", None, "is not valid JSON (line 1"),
        ({"title": "x"}, "prompt", "is missing"),
        ({"prompt": "a castle"}, "prompt", "must contain {subject}"),
        ({**GOOD, "steps": "many"}, "steps", "must be a whole number"),
        ({**GOOD, "steps": 500}, "steps", "between 1 and 150"),
        ({**GOOD, "guidance": float("nan")}, "guidance", "between 0 and 30"),
        ({**GOOD, "width": 500}, "width", "multiple of 8"),
        ({**GOOD, "sampler": "Magic"}, "sampler", "unknown sampler 'Magic'"),
        ({**GOOD, "promt": "typo"}, "promt", "unknown field"),
        ({**GOOD, "style_lora": {"role": "nope", "weight": 1}}, "style_lora.role", "unknown model role"),
        ({**GOOD, "style_lora": {"weight": 1}}, "style_lora", "exactly one of 'role'"),
        ([1, 2], None, "must hold a JSON object"),
    ],
)
def test_broken_preset_files_name_file_field_and_problem(tmp_path: Path, data, field, problem) -> None:  # noqa: ANN001
    path = write(tmp_path, "broken", data)
    with pytest.raises(InputError) as err:
        load_preset_file(path)
    message = str(err.value)
    assert "broken.json" in message and problem in message
    if field:
        assert f"field '{field}'" in message


def test_bad_file_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file name must be lower-case"):
        load_preset_file(write(tmp_path, "My Preset", GOOD))


def test_broken_user_file_is_skipped_in_the_list_but_reported(settings: Settings) -> None:
    write(user_styles_dir(settings), "broken", {"prompt": "no placeholder"})
    presets, problems = preset_catalogue(settings)
    assert "broken" not in {p.id for p in presets} and len(presets) >= 12
    assert len(problems) == 1 and "broken.json" in problems[0] and "{subject}" in problems[0]
    with pytest.raises(InputError, match="must contain"):
        get_preset(settings, "broken")


def test_unknown_preset_lists_the_available_ones(settings: Settings) -> None:
    with pytest.raises(InputError, match="Unknown style preset 'nope'.*studio-headshot"):
        get_preset(settings, "nope")


def test_preset_sizes_scale_to_the_model_and_fill_the_request(settings: Settings) -> None:
    preset = get_preset(settings, "studio-headshot")
    assert preset.size_for(512) == (preset.width, preset.height)
    assert preset.size_for(64) == (64, 80)  # tiny model: 512x640 scaled by 1/8
    gen = build_generation(StylizeRequest(preset="studio-headshot", seed=1), preset, "sks woman", 64)
    assert gen.prompt == preset.render_prompt("sks woman") and "sks woman" in gen.prompt
    assert (gen.width, gen.height, gen.steps, gen.sampler) == (64, 80, preset.steps, preset.sampler)
    assert gen.negative_prompt == preset.negative_prompt
    own = build_generation(StylizeRequest(preset="studio-headshot", steps=3, guidance=2.0, width=96, seed=1),
                           preset, None, 64)
    assert (own.steps, own.guidance, own.width) == (3, 2.0, 96) and "a person" in own.prompt


def test_prompt_composition_puts_the_likeness_in() -> None:
    assert compose_prompt("on a beach", None, "sks man") == "sks man, on a beach"
    assert compose_prompt("{subject} on a beach", None, "sks man") == "sks man on a beach"
    assert compose_prompt("on a beach", None, None) == "on a beach"
    assert compose_prompt("at night", "photo of sks man", "sks man") == "photo of sks man, at night"
