"""The missing-weights notice beside a tab's buttons: what is off, every role the modes need, one row per purpose."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from portrait_studio.config import Settings
from ui.readiness import ActionGate


def test_animate_without_weights_lists_every_mode_and_groups_the_motion_loras(tmp_path: Path) -> None:
    gate = ActionGate(SimpleNamespace(settings=Settings(home=tmp_path / "home", offline=True)), ["animate"])
    assert not gate.interactive("animate")
    text = gate.markdown()
    assert text.startswith("**Animate** is switched off: it needs `base`, `motion_adapter_v3`, `domain_adapter_v3`")
    rows = [line for line in text.splitlines() if line.startswith("- **")]
    camera = [row for row in rows if row.startswith("- **camera motion**")]
    assert len(camera) == 1 and camera[0].count("`motion_lora_") == 8
    for mode in ("starting from a portrait (sparsectrl)", "Fast (AnimateDiff-Lightning)",
                 "instant likenesses (face adapter)", "Animate (required)"):
        assert any(row.startswith(f"- **{mode}**: ") and "(missing, " in row for row in rows), mode
    # offline: no Download button, so the notice does not point at one
    assert text.endswith("restart it after `python -m portrait_studio download --roles "
                         "base,motion_adapter_v3,domain_adapter_v3`")
    assert "Download button" not in text


def test_with_downloads_allowed_the_notice_points_at_the_button(tmp_path: Path) -> None:
    gate = ActionGate(SimpleNamespace(settings=Settings(home=tmp_path / "home")), ["talk"])
    assert not gate.interactive("talk")
    assert "Fetch them with the Download button below, or with `python -m portrait_studio download" in gate.markdown()


def test_nothing_to_say_when_everything_can_run(tmp_path: Path) -> None:
    gate = ActionGate(SimpleNamespace(settings=Settings(home=tmp_path / "home", profile="tiny")), ["talk", "train"])
    assert gate.interactive("talk") and gate.interactive("train") and gate.markdown() == ""
