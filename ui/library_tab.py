"""Library tab: the owner's likenesses and imported LoRAs — browse, rename, delete, import, export."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

from portrait_studio.registry import EXPORT_FORMATS
from portrait_studio.services import Services
from ui.common import call_service, load_picture, request_owner
from ui.widgets import as_text


def build(services: Services) -> dict[str, gr.Component]:
    with gr.Row():
        with gr.Column(scale=3):
            gallery = gr.Gallery(label="Your likenesses and LoRAs", columns=4, height=360, allow_preview=False,
                                 elem_id="library-gallery")
            refresh = gr.Button("Refresh", size="sm")
        with gr.Column(scale=2):
            choice = gr.Dropdown(label="Selected", choices=[], elem_id="library-choice")
            details = gr.JSON(label="Details")
            new_name = gr.Textbox(label="New name")
            with gr.Row():
                rename = gr.Button("Rename")
                delete = gr.Button("Delete", variant="stop")
            with gr.Row():
                fmt = gr.Radio(list(EXPORT_FORMATS), value="kohya", label="Export format",
                               info="kohya works in A1111 and ComfyUI; diffusers in Python")
                export = gr.Button("Export")
            export_file = gr.File(label="Download", interactive=False)
    with gr.Accordion("Import a LoRA (.safetensors)", open=False):
        upload = gr.File(label="LoRA file", file_types=[".safetensors"], elem_id="library-upload")
        import_name = gr.Textbox(label="Name (optional)")
        import_button = gr.Button("Import", variant="primary")
    status = gr.Markdown()

    def listing(request: gr.Request, selected: str | None = None):
        records = services.registry.list(request_owner(services, request))
        items = []
        for record in records:
            # Pixels, not paths: Gradio caches them, and the registry folder is never served.
            picture = load_picture(record.preview_path or record.reference_path)
            if picture is not None:
                items.append((picture, record.name))
        choices = [(f"{r.name} ({'instant' if r.is_instant else r.source})", r.slug) for r in records]
        value = selected if selected in {r.slug for r in records} else (records[0].slug if records else None)
        return gr.update(value=items), gr.update(choices=choices, value=value)

    def show(slug: str | None, request: gr.Request):
        if not slug:
            return None
        record = call_service(services.registry.get, request_owner(services, request), slug)
        return record.to_dict(include_paths=False)

    def do_rename(slug: str | None, name: str, request: gr.Request):
        if not slug:
            raise gr.Error("Pick a LoRA first.")
        record = call_service(services.registry.rename, request_owner(services, request), slug, name or "")
        return (*listing(request, record.slug), f"Renamed to **{as_text(record.name)}**.")

    def do_delete(slug: str | None, request: gr.Request):
        if not slug:
            raise gr.Error("Pick a LoRA first.")
        call_service(services.registry.delete, request_owner(services, request), slug)
        return (*listing(request), f"Deleted **{as_text(slug)}**.")

    def do_export(slug: str | None, export_format: str, request: gr.Request):
        if not slug:
            raise gr.Error("Pick a LoRA first.")
        owner = request_owner(services, request)
        out_dir = services.output_dir(owner, "exports")
        path = call_service(services.registry.export, owner, slug, export_format, out_dir)
        return str(path)

    def do_import(file_path: str | None, name: str, request: gr.Request):
        if not file_path:
            raise gr.Error("Choose a .safetensors file to import.")
        record = call_service(services.import_lora, request_owner(services, request), Path(file_path), name or None)
        summary = json.dumps({"name": record.name, "rank": record.rank, "trigger": record.trigger})
        return (*listing(request, record.slug), f"Imported **{as_text(record.name)}** — {as_text(summary)}")

    refresh.click(listing, None, [gallery, choice], api_name="library_list")
    choice.change(show, [choice], [details], api_name=False)
    rename.click(do_rename, [choice, new_name], [gallery, choice, status], api_name="library_rename")
    delete.click(do_delete, [choice], [gallery, choice, status], api_name="library_delete")
    export.click(do_export, [choice, fmt], [export_file], api_name="library_export")
    import_button.click(do_import, [upload, import_name], [gallery, choice, status], api_name="library_import")
    return {"gallery": gallery, "choice": choice, "listing": listing}
