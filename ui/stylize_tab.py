"""Stylize tab: prompt to portraits (likeness, presets, templates and anime build on this)."""

from __future__ import annotations

import gradio as gr

from portrait_studio.media.outputs import save_png
from portrait_studio.models.manager import DEFAULT_SCHEDULER, SCHEDULERS
from portrait_studio.services import Services
from portrait_studio.stylize.generate import GenerateRequest, generate
from ui.common import CancelTokens, call_service, missing_markdown, progress_fn, request_owner, session_key
from ui.gpu import GPU_QUEUE, on_gpu

TASK = "stylize"


def build(services: Services, tokens: CancelTokens) -> None:
    gr.Markdown(missing_markdown(services, ["base"]))
    with gr.Row():
        with gr.Column(scale=2):
            prompt = gr.Textbox(
                label="Prompt", lines=3, placeholder="studio portrait photo, soft light, 85mm", elem_id="stylize-prompt"
            )
            negative = gr.Textbox(label="Negative prompt", value="blurry, deformed, low quality")
            with gr.Row():
                n_images = gr.Slider(1, 8, value=1, step=1, label="Images")
                seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)")
            with gr.Accordion("Advanced", open=False):
                sampler = gr.Dropdown(list(SCHEDULERS), value=DEFAULT_SCHEDULER, label="Sampler")
                steps = gr.Slider(1, 100, value=25, step=1, label="Steps", elem_id="stylize-steps")
                guidance = gr.Slider(0, 20, value=7.0, step=0.5, label="Guidance")
                width = gr.Slider(0, 1024, value=0, step=8, label="Width (0 = model default)")
                height = gr.Slider(0, 1024, value=0, step=8, label="Height (0 = model default)")
            with gr.Row():
                run = gr.Button("Generate", variant="primary", elem_id="stylize-generate")
                stop = gr.Button("Cancel", variant="stop", elem_id="stylize-cancel")
        with gr.Column(scale=3):
            gallery = gr.Gallery(label="Results", columns=2, height=480, elem_id="stylize-gallery")
            notes = gr.Markdown(elem_id="stylize-notes")

    @on_gpu(seconds=120)
    def on_generate(prompt_text, negative_text, count, seed_value, sampler_name, step_count, cfg, w, h,
                    request: gr.Request, progress=gr.Progress()):
        session = session_key(request)
        token = tokens.start(session, TASK)
        try:
            req = GenerateRequest(
                prompt=prompt_text or "", negative_prompt=negative_text or "",
                seed=None if seed_value is None or seed_value < 0 else int(seed_value), steps=int(step_count),
                guidance=float(cfg), width=int(w) or None, height=int(h) or None, n=int(count),
                sampler=sampler_name if sampler_name in SCHEDULERS else "",
            )
            result = call_service(generate, services.manager, req, progress_fn(progress), token)
        finally:
            tokens.finish(session, TASK, token)
        out_dir = services.output_dir(request_owner(services, request), TASK)
        items = []
        for item in result.images:
            path = save_png(item.image, out_dir / f"portrait-{item.seed}.png", item.metadata)
            items.append((str(path), f"seed {item.seed}"))
        lines = [f"⚠️ {w}" for w in result.warnings]
        lines.append(f"Seeds: {', '.join(str(i.seed) for i in result.images)}")
        return items, "\n\n".join(lines)

    event = run.click(
        on_generate,
        inputs=[prompt, negative, n_images, seed, sampler, steps, guidance, width, height],
        outputs=[gallery, notes],
        api_name="stylize",
        **GPU_QUEUE,
    )

    def on_cancel(request: gr.Request):
        if tokens.cancel(session_key(request), TASK):
            gr.Info("Cancelling after the current step…")

    # The token stops a running job within one step; `cancels` also drops it from the queue if still waiting.
    stop.click(on_cancel, None, None, queue=False, api_name=False, cancels=[event])
