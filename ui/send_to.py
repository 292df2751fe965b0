"""The "Send to…" buttons: a result goes to another tab *with the work that made it*.

The image's own stored settings (its PNG text chunk) say which likeness, preset, prompt and seed made it, so
what travels is what made the picture, not whatever the form holds now. Animate gets all of it; Talk gets the
picture and its likeness is cleared, so the sent portrait (not a likeness's reference face) is what talks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from portrait_studio.services import Services
from ui.widgets import likeness_choices

NOTHING_YET = "Nothing to send yet: make something first."


def chosen_result(selected: str | None, paths: list[str] | None) -> str | None:
    """The picked result, else the first one (right after generating nothing is picked yet)."""
    if selected:
        return selected
    return paths[0] if paths else None


def work_of(path: str) -> dict[str, Any]:
    """Likeness slug, preset, prompt, negative prompt and seed of a Stylize result ({} when unreadable)."""
    from portrait_studio.media.outputs import read_png_metadata

    try:
        metadata = read_png_metadata(Path(path))
    except (OSError, ValueError):
        return {}
    asked = metadata.get("request") if isinstance(metadata.get("request"), dict) else {}
    return {
        "likeness": str(asked.get("likeness") or ""),
        "preset": str(metadata.get("preset") or "") if asked else "",
        "prompt": str(asked.get("prompt", "")) if asked else str(metadata.get("prompt", "")),
        "negative_prompt": str(asked.get("negative_prompt", "")),
        "seed": metadata.get("seed"),
    }


def wire_send_to(services: Services, tabs: gr.Tabs, stylize: dict[str, Any], animate: dict[str, Any],
                 talk: dict[str, Any]) -> None:
    """Connect Stylize's and Animate's Send buttons (called once from ui.app)."""

    def to_animate(selected: str | None, paths: list[str] | None, current_negative: str, request: gr.Request):
        path = chosen_result(selected, paths)
        if path is None:
            raise gr.Error(NOTHING_YET)
        work = work_of(path)
        choices = likeness_choices(services, request)
        slug = work.get("likeness", "")
        known = slug in {value for _, value in choices}
        seed = work.get("seed")
        if known or not slug:
            message = "Sent the picture" + (" with its likeness, prompt and seed." if slug else " with its prompt"
                                            " and seed.")
        else:
            message = f"Sent the picture; its likeness '{slug}' is no longer in your Library."
        return (
            path,
            gr.update(choices=choices, value=slug if known else ""),
            gr.update(value=work.get("preset", "")),
            gr.update(value=work.get("prompt", "")),
            gr.update(value=work.get("negative_prompt") or current_negative),
            gr.update(value=int(seed) if isinstance(seed, int) else -1),
            gr.update(value=message, visible=True),
            gr.Tabs(selected="animate"),
        )

    def to_talk(selected: str | None, paths: list[str] | None):
        path = chosen_result(selected, paths)
        if path is None:
            raise gr.Error(NOTHING_YET)
        return path, gr.update(value=""), gr.Tabs(selected="talk")

    def first_frame_to_talk(gif: str | None):
        if not gif:
            raise gr.Error(NOTHING_YET)
        return gif, gr.update(value=""), gr.Tabs(selected="talk")

    def anime_to_animate(picture: str | None):
        if not picture:
            raise gr.Error("Make an anime picture first.")
        return picture, gr.update(value="Sent the anime picture: write a prompt (or pick a preset) for the motion.",
                                  visible=True), gr.Tabs(selected="animate")

    animate["send_to_talk"].click(first_frame_to_talk, [animate["gif"]], [talk["portrait"], talk["likeness"], tabs],
                                  api_name=False)
    anime = stylize.get("anime")
    if anime is not None:
        anime["send_to_animate"].click(anime_to_animate, [anime["output"]],
                                       [animate["init_image"], animate["sent_note"], tabs], api_name=False)
        anime["send_to_talk"].click(first_frame_to_talk, [anime["output"]], [talk["portrait"], talk["likeness"], tabs],
                                    api_name=False)
    if "send_to_animate" not in stylize:
        return
    stylize["send_to_animate"].click(
        to_animate, [stylize["selected"], stylize["paths"], animate["negative"]],
        [animate["init_image"], animate["likeness"], animate["preset"], animate["prompt"], animate["negative"],
         animate["seed"], animate["sent_note"], tabs],
        api_name=False,
    )
    stylize["send_to_talk"].click(to_talk, [stylize["selected"], stylize["paths"]],
                                  [talk["portrait"], talk["likeness"], tabs], api_name=False)
