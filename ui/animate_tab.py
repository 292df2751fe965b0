"""Animate tab: AnimateDiff clips of a likeness (text to animation, or from a portrait), MP4 + GIF."""

from __future__ import annotations

import gradio as gr
from PIL import Image

from portrait_studio.animate.models import fast_available
from portrait_studio.animate.request import INTERPOLATIONS, AnimateRequest, Likeness
from portrait_studio.animate.service import animate
from portrait_studio.errors import InputError
from portrait_studio.models.roles import MOTION_LORAS
from portrait_studio.services import Services
from ui import gpu_budgets
from ui.common import (
    CancelTokens,
    call_service,
    cancel_handler,
    missing_markdown,
    progress_fn,
    request_owner,
    session_key,
)
from ui.gpu import GPU_QUEUE, on_gpu
from ui.widgets import likeness_dropdown, notes_markdown, preset_choices

TASK = "animate"


def build(services: Services, tokens: CancelTokens) -> dict[str, gr.Component]:
    gr.Markdown(missing_markdown(services, ["base", "motion_adapter"]))
    with gr.Row():
        with gr.Column(scale=2):
            likeness = likeness_dropdown(elem_id="animate-likeness")
            likeness_weight = gr.Slider(0, 1.5, value=0.8, step=0.05, label="Likeness weight")
            preset = gr.Dropdown(preset_choices(services), value="", label="Style preset")
            prompt = gr.Textbox(label="Prompt", lines=2, placeholder="smiling, wind in the hair, golden hour",
                                elem_id="animate-prompt")
            negative = gr.Textbox(label="Negative prompt", value="blurry, deformed, low quality")
            init_image = gr.Image(label="Start from a portrait (optional)", type="pil", sources=["upload", "clipboard"],
                                  elem_id="animate-init")
            strength = gr.Slider(0.05, 1.0, value=0.6, step=0.05, label="How far to move from the portrait")
            with gr.Row():
                motions = gr.CheckboxGroup(list(MOTION_LORAS), label="Camera motion")
                motion_weight = gr.Slider(0, 1.5, value=0.8, step=0.05, label="Motion strength")
            with gr.Accordion("Advanced", open=False, elem_id="animate-advanced"):
                frames = gr.Slider(2, 64, value=16, step=1, label="Frames (over 16 uses sliding context windows)",
                                   elem_id="animate-frames")
                fps = gr.Slider(1, 30, value=8, step=1, label="Frames per second")
                steps = gr.Slider(1, 60, value=25, step=1, label="Steps", elem_id="animate-steps")
                guidance = gr.Slider(0, 15, value=7.5, step=0.5, label="Guidance")
                seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)")
                interpolate_mode = gr.Radio(list(INTERPOLATIONS), value="none", label="Double the frame rate")
                fast = gr.Checkbox(label="Fast (AnimateDiff-Lightning, 4 steps)", value=False,
                                   interactive=fast_available(services.manager),
                                   info=None if fast_available(services.manager) else
                                   "needs: python -m portrait_studio download --roles animatediff_lightning")
            with gr.Row():
                run = gr.Button("Animate", variant="primary", elem_id="animate-run")
                stop = gr.Button("Cancel", variant="stop")
        with gr.Column(scale=3):
            video = gr.Video(label="MP4", elem_id="animate-video", autoplay=True, loop=True)
            gif = gr.Image(label="GIF", type="filepath", interactive=False, elem_id="animate-gif")
            frames_zip = gr.File(label="Frames (zip)")
            notes = gr.Markdown(elem_id="animate-notes")
            send_to_talk = gr.Button("Send first frame to Talk")

    @on_gpu(seconds=gpu_budgets.animate(services))
    def on_animate(slug, weight, preset_id, prompt_text, negative_text, start_image, move, motion_names, m_weight,
                   n_frames, frame_rate, step_count, cfg, seed_value, interp, fast_mode,
                   request: gr.Request, progress=gr.Progress()):
        owner = request_owner(services, request)
        like = None
        if slug:
            record = call_service(services.registry.get, owner, slug)
            like = Likeness.from_record(record, float(weight))
        text = prompt_text or ""
        if preset_id:
            from portrait_studio.stylize.presets import get_preset

            chosen = call_service(get_preset, services.settings, preset_id)
            subject = like.trigger if like and like.trigger else None
            text = ", ".join(part for part in (chosen.render_prompt(subject), text) if part)
            negative_text = negative_text or chosen.negative_prompt
        if interp not in INTERPOLATIONS:
            raise gr.Error(str(InputError(f"Unknown interpolation '{interp}'.")))
        req = AnimateRequest(
            prompt=text, negative_prompt=negative_text or "", likeness=like,
            motions=[(name, float(m_weight)) for name in (motion_names or [])], frames=int(n_frames),
            fps=int(frame_rate), steps=int(step_count), guidance=float(cfg),
            seed=None if seed_value is None or seed_value < 0 else int(seed_value), fast=bool(fast_mode),
            init_image=start_image if isinstance(start_image, Image.Image) else None, strength=float(move),
            interpolate=interp,
        )
        session = session_key(request)
        token = tokens.start(session, TASK)
        try:
            out_dir = services.output_dir(owner, TASK)
            result = call_service(animate, services.manager, req, out_dir, progress_fn(progress), token)
        finally:
            tokens.finish(session, TASK, token)
        extra = [f"{result.frames} frames at {result.fps} fps, seed {result.seed}"]
        return str(result.mp4_path), str(result.gif_path), str(result.frames_zip), notes_markdown(result.warnings,
                                                                                                   extra)

    event = run.click(
        on_animate,
        inputs=[likeness, likeness_weight, preset, prompt, negative, init_image, strength, motions, motion_weight,
                frames, fps, steps, guidance, seed, interpolate_mode, fast],
        outputs=[video, gif, frames_zip, notes],
        api_name="animate",
        **GPU_QUEUE,
    )

    stop.click(cancel_handler(tokens, TASK), None, None, queue=False, api_name=False, cancels=[event])
    return {"likeness": likeness, "init_image": init_image, "gif": gif, "send_to_talk": send_to_talk}
