from pathlib import Path

import pytest

from portrait_studio.config import Settings, settings_from_env
from portrait_studio.errors import InputError


def test_env_values_are_parsed_and_typed(tmp_path: Path) -> None:
    env = {
        "PORTRAIT_STUDIO_HOME": str(tmp_path),
        "PORTRAIT_STUDIO_PROFILE": "tiny",
        "PORTRAIT_STUDIO_MAX_PHOTOS": "12",
        "PORTRAIT_STUDIO_CACHE_GB": "2.5",
        "PORTRAIT_STUDIO_OFFLINE": "yes",
        "PORTRAIT_STUDIO_MODEL_BASE": "someone/other-sd15",
    }
    settings = settings_from_env(env)
    assert settings.home == tmp_path
    assert settings.profile == "tiny"
    assert settings.max_photos == 12
    assert settings.cache_gb == 2.5
    assert settings.offline is True
    assert settings.model_overrides == {"base": "someone/other-sd15"}
    assert settings.registry_dir == tmp_path / "registry"


def test_explicit_overrides_beat_the_environment(tmp_path: Path) -> None:
    settings = settings_from_env({"PORTRAIT_STUDIO_PROFILE": "tiny"}, profile="default", home=tmp_path)
    assert settings.profile == "default"


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"PORTRAIT_STUDIO_PROFILE": "huge"}, "profile"),
        ({"PORTRAIT_STUDIO_DEVICE": "tpu"}, "device"),
        ({"PORTRAIT_STUDIO_MAX_PHOTOS": "many"}, "PORTRAIT_STUDIO_MAX_PHOTOS"),
        ({"PORTRAIT_STUDIO_OFFLINE": "perhaps"}, "PORTRAIT_STUDIO_OFFLINE"),
        ({"PORTRAIT_STUDIO_MIN_PHOTOS": "30"}, "min_photos"),
    ],
)
def test_bad_values_name_the_field(env: dict[str, str], field: str) -> None:
    with pytest.raises(InputError, match=field):
        settings_from_env(env)


def test_replace_validates() -> None:
    with pytest.raises(InputError, match="dtype"):
        Settings().replace(dtype="float8")
