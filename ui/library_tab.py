"""Library tab: the owner's likenesses and imported LoRAs — browse, rename, delete (confirmed, undoable),
import, export (a re-import keeps class word, reference face and flags)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from portrait_studio.registry import EXPORT_FORMATS
from portrait_studio.services import Services
from ui.common import call_service, request_owner
from ui.library_view import caption_of, details_markdown, picture_of, rename_message
from ui.widgets import as_text


def build(services: Services) -> dict[str, gr.Component]:
    with gr.Row():
        with gr.Column(scale=3):
            gallery = gr.Gallery(label="Your likenesses and LoRAs", columns=4, height=360, allow_preview=False,
                                 elem_id="library-gallery")
            refresh = gr.Button("Refresh", size="sm")
        with gr.Column(scale=2):
            choice = gr.Dropdown(label="Selected", choices=[], elem_id="library-choice")
            trigger = gr.Textbox(label="Trigger word: put it in your prompt (here, in A1111 or ComfyUI)",
                                 interactive=False, buttons=["copy"], elem_id="library-trigger")
            details = gr.Markdown(elem_id="library-details")
            new_name = gr.Textbox(label="New name", elem_id="library-new-name")
            with gr.Row():
                rename = gr.Button("Rename", elem_id="library-rename")
                delete = gr.Button("Delete…", variant="stop", elem_id="library-delete")
            with gr.Row(visible=False) as confirm_row:
                confirm_text = gr.Markdown(elem_id="library-confirm-text")
                confirm = gr.Button("Yes, delete it", variant="stop", elem_id="library-delete-confirm")
                keep = gr.Button("Keep it", elem_id="library-delete-keep")
            with gr.Row():
                status = gr.Markdown(elem_id="library-status")
                undo = gr.Button("Undo delete", visible=False, elem_id="library-undo", scale=0)
            with gr.Row():
                fmt = gr.Radio(list(EXPORT_FORMATS), value="kohya", label="Export format",
                               info="kohya works in A1111 and ComfyUI; diffusers in Python. Both keep the class "
                                    "word, reference face and flags for a re-import here")
                export = gr.Button("Export")
            export_file = gr.File(label="Download", interactive=False)
    with gr.Accordion("Import a LoRA (.safetensors)", open=False):
        upload = gr.File(label="LoRA file", file_types=[".safetensors"], elem_id="library-upload")
        import_name = gr.Textbox(label="Name (optional)")
        import_button = gr.Button("Import", variant="primary")
    undo_token = gr.State(None)

    def listing(request: gr.Request, selected: str | None = None):
        records = services.registry.list(request_owner(services, request))
        # Pixels, not paths: Gradio caches them, and the registry folder is never served. Entries without a
        # picture (most imported LoRAs) get a card with their name and trigger word.
        items = [(picture_of(record), caption_of(record)) for record in records]
        choices = [(f"{r.name} ({'instant' if r.is_instant else r.source})", r.slug) for r in records]
        value = selected if selected in {r.slug for r in records} else (records[0].slug if records else None)
        return gr.update(value=items), gr.update(choices=choices, value=value)

    def show(slug: str | None, request: gr.Request):
        if not slug:
            return "", "*Nothing here yet: train a likeness, or import a LoRA below.*"
        record = call_service(services.registry.get, request_owner(services, request), slug)
        return record.trigger, details_markdown(record)

    def pick(evt: gr.SelectData, request: gr.Request):
        records = services.registry.list(request_owner(services, request))
        return gr.update(value=records[evt.index].slug) if evt.index is not None and evt.index < len(records) \
            else gr.update()

    def do_rename(slug: str | None, name: str, request: gr.Request):
        if not slug:
            raise gr.Error("Pick a LoRA first.")
        owner = request_owner(services, request)
        old = call_service(services.registry.get, owner, slug)
        record = call_service(services.registry.rename, owner, slug, name or "")
        return (*listing(request, record.slug), rename_message(old, record))

    def ask_delete(slug: str | None, request: gr.Request):
        if not slug:
            raise gr.Error("Pick a LoRA first.")
        record = call_service(services.registry.get, request_owner(services, request), slug)
        return gr.update(visible=True), f"Delete **{as_text(record.name)}**? You can undo it for an hour."

    def do_delete(slug: str | None, request: gr.Request):
        if not slug:
            raise gr.Error("Pick a LoRA first.")
        owner = request_owner(services, request)
        record = call_service(services.registry.get, owner, slug)
        token = call_service(services.registry.delete, owner, slug)
        return (*listing(request), f"Deleted **{as_text(record.name)}**. Changed your mind? Undo brings it back.",
                gr.update(visible=False), gr.update(visible=True), {"token": token, "name": record.name})

    def do_undo(deleted: dict | None, request: gr.Request):
        if not deleted:
            raise gr.Error("Nothing to undo.")
        record = call_service(services.registry.undo_delete, request_owner(services, request), deleted["token"])
        message = (f"**{as_text(record.name)}** is back." if record.name == deleted["name"] else
                   f"**{as_text(deleted['name'])}** is back as **{as_text(record.name)}**: its old name was "
                   "taken meanwhile.")
        return (*listing(request, record.slug), message, gr.update(visible=False), None)

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
        trigger = f"trigger word `{as_text(record.trigger)}`" if record.trigger else "no trigger word in the file"
        kept = " with its class word and reference face" if record.reference_path else ""
        return (*listing(request, record.slug), f"Imported **{as_text(record.name)}**{kept}: {trigger}.")

    refresh.click(listing, None, [gallery, choice], api_name="library_list")
    choice.change(show, [choice], [trigger, details], api_name=False)
    gallery.select(pick, None, [choice], api_name=False)
    rename.click(do_rename, [choice, new_name], [gallery, choice, status], api_name="library_rename")
    delete.click(ask_delete, [choice], [confirm_row, confirm_text], api_name=False)
    keep.click(lambda: gr.update(visible=False), None, [confirm_row], api_name=False)
    confirm.click(do_delete, [choice], [gallery, choice, status, confirm_row, undo, undo_token],
                  api_name="library_delete")
    undo.click(do_undo, [undo_token], [gallery, choice, status, undo, undo_token], api_name="library_undo")
    export.click(do_export, [choice, fmt], [export_file], api_name="library_export")
    import_button.click(do_import, [upload, import_name], [gallery, choice, status], api_name="library_import")
    return {"gallery": gallery, "choice": choice, "listing": listing}
