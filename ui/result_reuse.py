"""A Stylize result's settings shown in words, and "Reuse settings" / "Reuse seed" (A1111's PNG Info, Fooocus's
metadata): the settings stored in the picture fill the form again (portrait_studio/stylize/reuse.py)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from portrait_studio.services import Services
from ui.common import call_service, request_owner
from ui.send_to import chosen_result
from ui.widgets import as_text, likeness_choices

PICK_FIRST = "Generate something first: the settings come from a result."


def settings_markdown(metadata: dict[str, Any]) -> str:
    """The settings of one result as a short readable list (never raw JSON)."""
    if not metadata:
        return ""
    asked = metadata.get("request") if isinstance(metadata.get("request"), dict) else {}

    def text(value: Any) -> str:
        return as_text(value) if value not in (None, "") else "—"

    rows = [("Seed", metadata.get("seed")), ("Preset", metadata.get("preset")),
            ("Your prompt", asked.get("prompt")), ("Full prompt", metadata.get("prompt")),
            ("Negative prompt", metadata.get("negative_prompt"))]
    likeness = metadata.get("likeness")
    if likeness:
        kind = metadata.get("likeness_kind") or ""
        weight = metadata.get("likeness_weight")
        rows.append(("Likeness", f"{likeness} ({kind}{'' if weight is None else f', weight {weight}'})"))
    if metadata.get("face_strength") is not None:
        rows.append(("Face strength", metadata.get("face_strength")))
    styles = metadata.get("style_loras") or []
    if styles:
        rows.append(("Style LoRAs", ", ".join(f"{name} × {weight}" for name, weight in styles)))
    rows += [("Steps", metadata.get("steps")), ("Guidance", metadata.get("guidance")),
             ("Sampler", metadata.get("sampler")), ("Size", f"{metadata.get('width')} × {metadata.get('height')}"),
             ("Model", metadata.get("model"))]
    if metadata.get("restore"):
        rows.append(("Face restoration", metadata.get("restore")))
    lines = [f"- **{label}:** {text(value)}" for label, value in rows]
    if metadata.get("random_weights"):
        lines.append("- ⚠️ made with random test weights: the picture is noise, not a result")
    return "\n".join(lines)


def wire_reuse(services: Services, selected: gr.State, paths: gr.State, reuse_settings: gr.Button,
               reuse_seed: gr.Button, form: dict[str, gr.components.Component], notes: gr.Markdown) -> None:
    """Connect the two buttons; ``form`` holds the Stylize inputs by name."""
    names = ["likeness", "likeness_weight", "face_strength", "face_with_lora", "preset", "prompt", "negative",
             "seed", "steps", "guidance", "width", "height", "sampler", "restore", "style_loras"]

    def settings_of(selected_path: str | None, result_paths: list[str] | None):
        from pathlib import Path

        from portrait_studio.stylize.reuse import settings_of_file

        path = chosen_result(selected_path, result_paths)
        if path is None:
            raise gr.Error(PICK_FIRST)
        return call_service(settings_of_file, Path(path))

    def on_reuse_settings(selected_path: str | None, result_paths: list[str] | None, request: gr.Request):
        found = settings_of(selected_path, result_paths)
        owner = request_owner(services, request)
        choices = likeness_choices(services, request)
        known = {value for _, value in choices}
        notes_lines = list(found.notes)
        likeness = found.likeness if found.likeness in known else ""
        if found.likeness and not likeness:
            notes_lines.append(f"Its likeness '{found.likeness}' is no longer in your Library; none is chosen.")
        records = {r.name: r for r in services.registry.list(owner)}
        style_slugs = [records[name].slug for name, _ in found.style_loras if name in records]
        missing = [name for name, _ in found.style_loras if name not in records]
        if missing:
            notes_lines.append(f"Style LoRAs no longer in your Library: {', '.join(missing)}.")
        record = next((r for r in records.values() if r.slug == likeness), None)
        trained = record is not None and not record.is_instant
        styles = [(r.name, r.slug) for r in records.values() if r.source == "imported"]
        values = {
            "likeness": gr.update(choices=choices, value=likeness),
            "likeness_weight": gr.update(value=found.likeness_weight) if found.likeness_weight is not None
            else gr.update(),
            "face_strength": gr.update(value=found.face_strength) if found.face_strength is not None else gr.update(),
            "face_with_lora": gr.update(value=bool(trained and found.face_strength is not None)),
            "preset": gr.update(value=found.preset), "prompt": gr.update(value=found.prompt),
            "negative": gr.update(value=found.negative_prompt), "seed": gr.update(value=found.seed),
            "steps": gr.update(value=found.steps), "guidance": gr.update(value=found.guidance),
            "width": gr.update(value=found.width), "height": gr.update(value=found.height),
            "sampler": gr.update(value=found.sampler or "(preset)"), "restore": gr.update(value=found.restore),
            "style_loras": gr.update(choices=styles, value=style_slugs),
        }
        message = f"Settings of the image with seed {found.seed} are back in the form: Generate makes it again."
        return (*[values[name] for name in names], "\n\n".join([message, *[f"⚠️ {n}" for n in notes_lines]]))

    def on_reuse_seed(selected_path: str | None, result_paths: list[str] | None):
        found = settings_of(selected_path, result_paths)
        return gr.update(value=found.seed), f"Seed {found.seed} is in the seed box; change the prompt and Generate."

    reuse_settings.click(on_reuse_settings, [selected, paths], [*[form[name] for name in names], notes],
                         api_name=False)
    reuse_seed.click(on_reuse_seed, [selected, paths], [form["seed"], notes], api_name=False)
