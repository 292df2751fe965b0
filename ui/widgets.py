"""Widgets several tabs share: the likeness picker, the preset picker, result notes."""

from __future__ import annotations

import gradio as gr

from portrait_studio.services import Services
from ui.common import request_owner

NO_LIKENESS = "(none)"


def likeness_choices(services: Services, request: gr.Request | None) -> list[tuple[str, str]]:
    records = services.registry.list(request_owner(services, request))
    return [(NO_LIKENESS, "")] + [(f"{r.name} — {'instant' if r.is_instant else r.source}", r.slug) for r in records]


def likeness_dropdown(label: str = "Likeness", elem_id: str | None = None) -> gr.Dropdown:
    return gr.Dropdown(label=label, choices=[(NO_LIKENESS, "")], value="", elem_id=elem_id,
                       info="Train one in Train Likeness, or import a LoRA in Library")


def refresh_likenesses(services: Services):
    def refresh(current: str | None, request: gr.Request):
        choices = likeness_choices(services, request)
        values = {value for _, value in choices}
        return gr.update(choices=choices, value=current if current in values else "")

    return refresh


def preset_choices(services: Services) -> list[tuple[str, str]]:
    from portrait_studio.stylize.presets import list_presets

    return [("(own prompt)", "")] + [(p.title, p.id) for p in list_presets(services.settings)]


def notes_markdown(warnings: list[str], extra: list[str] | None = None) -> str:
    lines = [f"⚠️ {w}" for w in warnings]
    lines.extend(extra or [])
    return "\n\n".join(lines)


_MARKDOWN_SPECIALS = "\\`*_{}[]()#+-!|~"


def as_text(value: object) -> str:
    """A user-chosen string (a library name) for a Markdown component: shown as typed, never as HTML, links,
    images or formatting."""
    import html

    escaped = html.escape(str(value), quote=False)
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIALS else ch for ch in escaped)
