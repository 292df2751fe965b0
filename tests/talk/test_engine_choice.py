"""Which talk engine `doctor` recommends, as a pure function of the machine's memory figures."""

from __future__ import annotations

import pytest

from portrait_studio.models.doctor import DoctorReport, MachineInfo, format_table
from portrait_studio.talk.engine_choice import advise, aniportrait_needs_gb


@pytest.mark.parametrize(("device", "vram", "engine", "size"), [
    ("cpu", None, "sadtalker", None),
    ("mps", None, "sadtalker", None),
    ("cuda", 6.0, "sadtalker", None),  # the half-precision weights alone are 5.5 GiB
    ("cuda", 8.0, "aniportrait", 256),
    ("cuda", 12.0, "aniportrait", 512),
    ("cuda", 80.0, "aniportrait", 512),
])
def test_engine_advice_follows_the_memory_figures(device: str, vram: float | None, engine: str,
                                                  size: int | None) -> None:
    advice = advise(device, vram)
    assert (advice.engine, advice.aniportrait_size) == (engine, size)
    if engine == "aniportrait":
        assert "estimate" in advice.reason


def test_needs_grow_with_size_and_precision() -> None:
    assert 5.5 < aniportrait_needs_gb(256) < aniportrait_needs_gb(512) < aniportrait_needs_gb(512, 4)


def test_doctor_table_names_the_engine() -> None:
    machine = MachineInfo(python="3.11", torch="2", device="cuda", device_name="card", vram_gb=24.0)
    text = format_table(DoctorReport("default", machine, []))
    assert "talk       aniportrait engine" in text and "512 px" in text
    assert DoctorReport("tiny", machine, []).to_dict()["talk_engine"]["engine"] == "aniportrait"
