"""Pickers that show pictures: the style preset's preview and the template photos as thumbnails."""

from __future__ import annotations

import threading
from pathlib import Path

import gradio as gr
from PIL import Image

from portrait_studio.errors import PortraitStudioError
from portrait_studio.services import Services
from portrait_studio.stylize.templates import list_templates, templates_dir
from ui.gpu import GPU_QUEUE, on_gpu

THUMB_SIDE = 160
_thumbs: dict[tuple[str, float], Image.Image] = {}
_thumbs_lock = threading.Lock()


def preset_preview_image(services: Services) -> gr.Image:
    return gr.Image(label="Preset preview", interactive=False, visible=False, height=180,
                    elem_id="stylize-preset-preview", show_label=True)


def wire_preset_preview(services: Services, preset: gr.Dropdown, preview: gr.Image, caption: gr.Markdown) -> None:
    """A stored preview or a labelled card at once; a missing real preview is then made on the GPU queue."""
    needs_making = gr.State(False)

    def shown(found):  # noqa: ANN001, ANN202
        note = found.note if found.real else "Labelled card, not a picture: " + found.note
        return gr.update(value=found.image, visible=True), gr.update(value=note, visible=True)

    def quick(preset_id: str | None):
        if not preset_id:
            return gr.update(value=None, visible=False), gr.update(value="", visible=False), False
        from portrait_studio.stylize.preset_previews import preset_preview, real_base_weights

        try:
            found = preset_preview(services.manager, services.settings, preset_id, make=False)
        except PortraitStudioError as exc:
            return gr.update(value=None, visible=False), gr.update(value=f"⚠️ {exc}", visible=True), False
        return (*shown(found), not found.real and real_base_weights(services.manager))

    @on_gpu(seconds=60)
    def make(preset_id: str | None, needed: bool):
        if not needed or not preset_id:
            return gr.update(), gr.update()
        from portrait_studio.stylize.preset_previews import preset_preview

        try:
            return shown(preset_preview(services.manager, services.settings, preset_id, make=True))
        except PortraitStudioError as exc:
            return gr.update(), gr.update(value=f"⚠️ {exc}", visible=True)

    preset.change(quick, [preset], [preview, caption, needs_making], api_name=False, show_progress="hidden").then(
        make, [preset, needs_making], [preview, caption], api_name=False, show_progress="minimal", **GPU_QUEUE)


def template_thumbnails(services: Services) -> list[tuple[Image.Image, str]]:
    """(thumbnail, file name) of each template photo; thumbnails are kept while the file is unchanged."""
    from portrait_studio.media.images import load_image

    folder = templates_dir(services.settings)
    items = []
    for name in list_templates(services.settings):
        path = folder / name
        try:
            key = (str(path), path.stat().st_mtime)
        except OSError:
            continue
        with _thumbs_lock:
            thumb = _thumbs.get(key)
        if thumb is None:
            try:
                image = load_image(Path(path), max_pixels=services.settings.max_image_pixels,
                                   max_bytes=services.settings.max_upload_mb * 1024 * 1024,
                                   min_short_side=THUMB_SIDE).image
            except PortraitStudioError:
                continue  # an unreadable file is left out; choosing it by name still explains why
            thumb = image.copy()
            thumb.thumbnail((THUMB_SIDE, THUMB_SIDE))
            with _thumbs_lock:
                _thumbs[key] = thumb
        items.append((thumb, name))
    return items


def build_template_picker(services: Services) -> tuple[gr.Gallery, gr.Dropdown, gr.Markdown]:
    """Thumbnails of the user's templates (click one to choose it) above the name dropdown."""
    gallery = gr.Gallery(label="Your templates (click one)", columns=5, height=200, allow_preview=False,
                         object_fit="contain", elem_id="stylize-template-gallery")
    empty = gr.Markdown(visible=False, elem_id="stylize-template-empty")
    name = gr.Dropdown(["", *list_templates(services.settings)], value="", label="Chosen template",
                       elem_id="stylize-template-name")
    return gallery, name, empty


def wire_template_picker(services: Services, opener: gr.Accordion, gallery: gr.Gallery, name: gr.Dropdown,
                         empty: gr.Markdown) -> None:
    def refresh(current: str | None):
        items = template_thumbnails(services)
        names = [label for _, label in items]
        note = "" if items else (f"No templates yet: put photos into `{templates_dir(services.settings)}`, then "
                                 "open this section again, or upload one above.")
        return (gr.update(value=items, visible=bool(items)), gr.update(value=note, visible=not items),
                gr.update(choices=["", *names], value=current if current in names else ""))

    def choose(evt: gr.SelectData):
        caption = evt.value.get("caption") if isinstance(evt.value, dict) else None
        return gr.update(value=caption or "")

    opener.expand(refresh, [name], [gallery, empty, name], api_name=False)
    gallery.select(choose, None, [name], api_name=False)
