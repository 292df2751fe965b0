"""Stylize tab: likeness portraits from presets or prompts, template portraits, best-of-N, photo to anime."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
from PIL import Image

from portrait_studio.media.outputs import read_png_metadata
from portrait_studio.models.manager import SCHEDULERS
from portrait_studio.services import Services
from portrait_studio.stylize.outputs import save_images, zip_outputs
from portrait_studio.stylize.request import CONTROLS, StylizeRequest
from portrait_studio.stylize.service import stylize
from portrait_studio.stylize.templates import load_template
from ui import gpu_budgets, limits
from ui.anime_section import build_anime_section
from ui.common import (
    CancelTokens,
    call_service,
    progress_fn,
    request_owner,
    session_key,
)
from ui.gpu import GPU_QUEUE, on_gpu
from ui.job_runs import JobLine, tracked
from ui.readiness import ActionGate
from ui.result_reuse import settings_markdown, wire_reuse
from ui.seed_box import seed_box
from ui.status_line import StatusLine
from ui.stylize_pickers import build_template_picker, preset_preview_image, wire_preset_preview, wire_template_picker
from ui.upload_check import check_on_arrival
from ui.widgets import likeness_dropdown, notes_markdown, preset_choices, refresh_likenesses

TASK = "stylize"


def _face_strength(services: Services, owner: str, slug: str | None, strength: float | None,
                   with_lora: bool) -> float | None:
    """The request's face-adapter strength: the slider for an instant likeness, for a trained one only when
    the user asked for LoRA + adapter (None = off)."""
    if not slug or strength is None:
        return None
    record = call_service(services.registry.get, owner, slug)
    return float(strength) if record.is_instant or with_lora else None


def build(services: Services, tokens: CancelTokens) -> dict[str, gr.Component]:
    gate = ActionGate(services, ["stylize", "anime"])
    top = limits.maxima(services.settings)  # lower on a public app
    with gr.Row():
        with gr.Column(scale=2):
            likeness = likeness_dropdown(elem_id="stylize-likeness")
            likeness_weight = gr.Slider(0, 1.5, value=0.9, step=0.05, label="Likeness weight (trained likeness)")
            face_strength = gr.Slider(0, 1.5, value=0.7, step=0.05, label="Face strength (face adapter)",
                                      info="Instant likenesses always use it; 0 turns it off",
                                      elem_id="stylize-face-strength")
            face_with_lora = gr.Checkbox(label="Add the face adapter to a trained likeness (LoRA + adapter)",
                                         value=False)
            preset = gr.Dropdown(preset_choices(services), value="", label="Style preset", elem_id="stylize-preset")
            preset_preview = preset_preview_image(services)
            preset_caption = gr.Markdown(visible=False, elem_id="stylize-preset-caption")
            prompt = gr.Textbox(
                label="Prompt (added to the preset's, or on its own)", lines=3,
                placeholder="studio portrait photo, soft light, 85mm", elem_id="stylize-prompt",
            )
            negative = gr.Textbox(label="Negative prompt", value="")
            with gr.Row():
                n_images = gr.Slider(1, top.images, value=1, step=1, label="Images", elem_id="stylize-images")
                seed = seed_box(elem_id="stylize-seed")
            best_of = gr.Checkbox(label="Best of N: rank by face similarity to the likeness", value=False)
            restore = gr.Slider(0, 1, value=0, step=0.1, label="Face restoration (GFPGAN; 0 = off)")
            with gr.Accordion("Template portrait: put the likeness into a photo", open=False) as template_section:
                template_upload = gr.Image(label="Template photo", type="pil", sources=["upload", "clipboard"],
                                           elem_id="stylize-template-upload")
                template_gallery, template_name, template_empty = build_template_picker(services)
                denoise = gr.Slider(0.05, 1.0, value=0.6, step=0.05, label="How much of the face to repaint")
                control = gr.Radio(list(CONTROLS), value="canny", label="Keep the template's structure with")
            with gr.Accordion("Style LoRAs", open=False):
                style_loras = gr.Dropdown([], multiselect=True, label="Imported LoRAs from your Library")
                style_weight = gr.Slider(0, 1.5, value=0.7, step=0.05, label="Style LoRA weight")
            with gr.Accordion("Advanced", open=False, elem_id="stylize-advanced"):
                sampler = gr.Dropdown(["(preset)", *SCHEDULERS], value="(preset)", label="Sampler")
                steps = gr.Slider(0, top.steps, value=0, step=1, label="Steps (0 = preset/default)",
                                  elem_id="stylize-steps")
                guidance = gr.Slider(0, 20, value=0, step=0.5, label="Guidance (0 = preset/default)")
                width = gr.Slider(0, top.size, value=0, step=8, label="Width (0 = model default)")
                height = gr.Slider(0, top.size, value=0, step=8, label="Height (0 = model default)")
            run = gr.Button("Generate", variant="primary", elem_id="stylize-generate",
                            interactive=gate.interactive("stylize"))
            line = JobLine(services, TASK, tokens)  # status, one progress bar, Cancel while it runs
            status = StatusLine("stylize-status-line")  # keeps the last error in words
            with gr.Accordion("Side by side: instant vs trained", open=False):
                compare_with = likeness_dropdown("Compare the likeness above with", elem_id="stylize-compare-with")
                compare = gr.Button("Side by side (same prompt and seed, both scored)", elem_id="stylize-compare")
        with gr.Column(scale=3):
            gallery = gr.Gallery(label="Results", columns=2, height=480, elem_id="stylize-gallery")
            notes = gr.Markdown(elem_id="stylize-notes")
            with gr.Row():
                send_to_animate = gr.Button("Send to Animate")
                send_to_talk = gr.Button("Send to Talk")
                zip_button = gr.Button("Download all (zip)")
            zip_file = gr.File(label="All images", interactive=False)
            with gr.Row():
                reuse_settings = gr.Button("Reuse settings", size="sm", elem_id="stylize-reuse-settings")
                reuse_seed = gr.Button("Reuse seed", size="sm", elem_id="stylize-reuse-seed")
            settings_view = gr.Markdown(label="Settings of the selected image", elem_id="stylize-settings")
    anime = build_anime_section(services, gate)
    gate.notice({"stylize": run, "anime": anime["run"]})
    paths_state = gr.State([])
    selected = gr.State(None)

    @status.track
    @tracked(services, TASK)
    @on_gpu(seconds=gpu_budgets.stylize(services))
    def on_generate(slug, weight, preset_id, prompt_text, negative_text, count, seed_value, rank, restore_strength,
                    template_image, template_choice, denoise_value, control_kind, lora_slugs, lora_weight,
                    sampler_name, step_count, cfg, w, h, strength=0.7, adapter_with_lora=False,
                    request: gr.Request = None, progress=gr.Progress()):
        owner = request_owner(services, request)
        limits.check_text(services.settings, "Prompt", prompt_text)
        limits.check_text(services.settings, "Negative prompt", negative_text)
        limits.admit(services, owner, TASK, steps=int(step_count or 0), width=int(w or 0), height=int(h or 0),
                     images=int(count or 1))
        face = _face_strength(services, owner, slug, strength, adapter_with_lora)
        template = template_image if isinstance(template_image, Image.Image) else None
        if template is None and template_choice:
            template = call_service(load_template, services.settings, template_choice)
        req = StylizeRequest(
            prompt=prompt_text or "", preset=preset_id or None, negative_prompt=negative_text or "",
            likeness=slug or None, likeness_weight=float(weight), face_strength=face,
            style_loras=[(s, float(lora_weight)) for s in (lora_slugs or [])],
            template=template, denoise=float(denoise_value), control=control_kind, n=int(count), best_of=bool(rank),
            seed=None if seed_value is None or seed_value < 0 else int(seed_value),
            width=int(w) or None, height=int(h) or None, steps=int(step_count) or None,
            guidance=float(cfg) or None, sampler=None if sampler_name == "(preset)" else sampler_name,
            restore=float(restore_strength),
        )
        session = session_key(request)
        token = tokens.start(session, TASK)
        try:
            with limits.time_budget(services.settings, tokens, session, TASK):
                result = call_service(stylize, services.manager, req, services.settings,
                                      services.registry, owner, progress_fn(progress), token)
        finally:
            tokens.finish(session, TASK, token)
        paths = save_images(result.images, services.output_dir(owner, TASK), stem="portrait")
        items = []
        for item, path in zip(result.images, paths, strict=True):
            caption = f"seed {item.seed}"
            if item.score is not None:
                caption += f" · similarity {item.score:.2f}"
            if result.random_weights:
                caption += " · random weights"
            items.append((str(path), caption))
        extra = [f"Seeds: {', '.join(str(i.seed) for i in result.images)}"]
        first = str(paths[0]) if paths else None  # Send to… and the settings panel start from the first result
        return items, notes_markdown(result.warnings, extra), [str(p) for p in paths], first

    results = [gallery, notes, paths_state, selected]
    line.attach(results)
    event = line.on(
        run.click, on_generate,
        inputs=[likeness, likeness_weight, preset, prompt, negative, n_images, seed, best_of, restore,
                template_upload, template_name, denoise, control, style_loras, style_weight,
                sampler, steps, guidance, width, height, face_strength, face_with_lora],
        outputs=results,
        api_name="stylize",
        **GPU_QUEUE,
    )

    @status.track
    @tracked(services, TASK)
    @on_gpu(seconds=60)  # two images at default settings (gpu_time: well under 60 s)
    def on_compare(slug, other, preset_id, prompt_text, negative_text, seed_value, step_count, request: gr.Request,
                   progress=gr.Progress()):
        owner = request_owner(services, request)
        req = StylizeRequest(prompt=prompt_text or "", preset=preset_id or None, negative_prompt=negative_text or "",
                             seed=None if seed_value is None or seed_value < 0 else int(seed_value),
                             steps=int(step_count) or None)
        session = session_key(request)
        token = tokens.start(session, TASK)
        try:
            from portrait_studio.stylize.compare import side_by_side  # torch: loaded on first use

            pair = call_service(side_by_side, services.manager, req, services.settings, (slug, other),
                                services.registry, owner, progress_fn(progress), token)
        finally:
            tokens.finish(session, TASK, token)
        paths = save_images(pair, services.output_dir(owner, TASK), stem="compare")
        items = [(str(path), f"{item.metadata['likeness']} ({item.metadata['likeness_kind']}) · likeness "
                             f"{item.score:.2f}") for item, path in zip(pair, paths, strict=True)]
        extra = [f"Seed {pair[0].seed} for both; the likeness score is the same measure for both kinds."]
        return items, notes_markdown([], extra), [str(p) for p in paths], str(paths[0])

    compare_event = line.on(
        compare.click, on_compare, inputs=[likeness, compare_with, preset, prompt, negative, seed, steps],
        outputs=results, api_name="stylize_side_by_side", **GPU_QUEUE,
    )
    status.follow(event)
    status.follow(compare_event)
    check_on_arrival(template_upload, status.markdown, services.settings)
    compare_with.focus(refresh_likenesses(services), [compare_with], [compare_with], api_name=False)

    def on_select(paths: list[str], evt: gr.SelectData):
        if not paths or evt.index is None or evt.index >= len(paths):
            return None, None
        path = paths[evt.index]
        return path, settings_markdown(read_png_metadata(Path(path)))

    gallery.select(on_select, [paths_state], [selected, settings_view], api_name=False)

    def settings_of_first(path: str | None) -> str:  # right after a run the first result is the selected one
        return settings_markdown(read_png_metadata(Path(path))) if path else ""

    # Chained, not extra outputs: /stylize keeps answering (gallery, notes) to API clients.
    for finished in (event, compare_event):
        finished.success(settings_of_first, [selected], [settings_view], api_name=False, queue=False)

    def on_zip(paths: list[str], request: gr.Request):
        out = services.output_dir(request_owner(services, request), "zips") / "portraits.zip"
        return str(call_service(zip_outputs, [Path(p) for p in paths or []], out))

    zip_button.click(on_zip, [paths_state], [zip_file], api_name=False)

    def refresh_style_loras(request: gr.Request):
        records = services.registry.list(request_owner(services, request))
        return gr.update(choices=[(r.name, r.slug) for r in records if r.source == "imported"])

    likeness.focus(refresh_style_loras, None, [style_loras], api_name=False)
    style_loras.focus(refresh_style_loras, None, [style_loras], api_name=False)

    wire_preset_preview(services, preset, preset_preview, preset_caption)
    wire_template_picker(services, template_section, template_gallery, template_name, template_empty)
    form = {"likeness": likeness, "likeness_weight": likeness_weight, "face_strength": face_strength,
            "face_with_lora": face_with_lora, "preset": preset, "prompt": prompt, "negative": negative, "seed": seed,
            "steps": steps, "guidance": guidance, "width": width, "height": height, "sampler": sampler,
            "restore": restore, "style_loras": style_loras}
    wire_reuse(services, selected, paths_state, reuse_settings, reuse_seed, form, notes)
    return {"likeness": likeness, "selected": selected, "paths": paths_state, "send_to_animate": send_to_animate,
            "send_to_talk": send_to_talk, "anime": anime, "job_line": line}
