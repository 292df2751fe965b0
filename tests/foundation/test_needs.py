"""Which roles each UI action needs, and what is missing without weights (looks only, downloads nothing)."""

from __future__ import annotations

from pathlib import Path

from portrait_studio.config import Settings
from portrait_studio.models.needs import ACTIONS, action_readiness
from portrait_studio.models.roles import ROLES


def test_every_named_role_exists_and_every_tab_action_is_described() -> None:
    assert set(ACTIONS) == {"instant", "train", "stylize", "anime", "animate", "talk"}
    for needs in ACTIONS.values():
        assert set(needs.required) | set(needs.optional) | set(needs.any_of) <= set(ROLES)


def test_without_weights_the_blocked_roles_and_the_reason(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", offline=True)
    instant = action_readiness(settings, "instant")
    assert instant.missing == ["base", "ip_adapter_face", "ip_image_encoder"] and not instant.ready
    assert instant.reason == ("Use now (instant) needs model weights that are not on this machine: base, "
                              "ip_adapter_face, ip_image_encoder.")
    anime = action_readiness(settings, "anime")
    assert anime.missing == ["animegan_face_paint_512_v2"]  # no style at all: the default one is named
    talk = action_readiness(settings, "talk")
    assert talk.missing == ["sadtalker"] and set(talk.statuses) == {"sadtalker", "gfpgan"}
    assert talk.statuses["sadtalker"].download_mb > 0  # the size the Download button shows


def test_the_tiny_profile_is_ready_everywhere(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", profile="tiny")
    assert all(action_readiness(settings, action).ready for action in ACTIONS)
