"""Pure pieces of the reuse UI: the seed check, what Send to… picks and carries, the Library's words."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from portrait_studio.media.outputs import save_png
from ui.library_view import rename_message
from ui.seed_box import seed_problem
from ui.send_to import chosen_result, work_of


def test_seed_check_names_the_range() -> None:
    for fine in (-1, 0, 4294967295, None, ""):
        assert seed_problem(fine) is None
    for bad in (99999999999999999999, 4294967296, -2, 1.5, float("nan"), "abc"):
        problem = seed_problem(bad)
        assert problem is not None and "0 to 4294967295" in problem
    assert "1e+20" in seed_problem(1e20)


def test_send_to_defaults_to_the_first_result_and_reads_the_work(tmp_path: Path) -> None:
    assert chosen_result(None, []) is None
    assert chosen_result(None, ["a.png", "b.png"]) == "a.png"
    assert chosen_result("b.png", ["a.png", "b.png"]) == "b.png"
    path = save_png(Image.new("RGB", (8, 8)), tmp_path / "r.png", {
        "seed": 9, "preset": "watercolor", "prompt": "watercolor of sks woman, beach",
        "request": {"prompt": "beach", "negative_prompt": "hat", "likeness": "grace", "template": False}})
    assert work_of(str(path)) == {"likeness": "grace", "preset": "watercolor", "prompt": "beach",
                                  "negative_prompt": "hat", "seed": 9}
    assert work_of(str(tmp_path / "gone.png")) == {}


def test_rename_says_what_happened_to_the_short_name() -> None:
    from dataclasses import replace

    from portrait_studio.registry.records import LoraRecord

    old = LoraRecord(name="Anna", slug="anna", trigger="sks", class_word="woman", base_model="m", base_revision="",
                     rank=4, steps=1, similarity=None, created="", source="trained", sha256="", folder=Path("/x"))
    moved = rename_message(old, replace(old, name="Anna Maria", slug="anna-maria"))
    assert "`anna` to `anna-maria`" in moved
    assert "stays `anna`" in rename_message(old, replace(old, name="ANNA"))
