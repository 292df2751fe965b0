"""Animate tab: AnimateDiff clips of a likeness (text to animation, or from a portrait), MP4 + GIF."""

from __future__ import annotations

import gradio as gr
from PIL import Image

from portrait_studio.animate.models import fast_available
from portrait_studio.animate.request import (
    INTERPOLATIONS,
    MAX_KEYFRAME_STRENGTH,
    PORTRAIT_MODES,
    AnimateRequest,
    Likeness,
)
from portrait_studio.errors import InputError
from portrait_studio.models.roles import MOTION_LORAS
from portrait_studio.services import Services
from ui import gpu_budgets, limits
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
from ui.seed_box import seed_box
from ui.status_line import StatusLine
from ui.upload_check import check_on_arrival
from ui.widgets import likeness_dropdown, notes_markdown, preset_choices

TASK = "animate"


def build(services: Services, tokens: CancelTokens) -> dict[str, gr.Component]:
    gate = ActionGate(services, ["animate"])
    top = limits.maxima(services.settings)  # lower on a public app
    with gr.Row():
        with gr.Column(scale=2):
            likeness = likeness_dropdown(elem_id="animate-likeness")
            likeness_weight = gr.Slider(0, 1.5, value=0.8, step=0.05, label="Likeness weight (trained likeness)")
            face_strength = gr.Slider(0, 1.5, value=0.7, step=0.05, label="Face strength (face adapter)",
                                      info="Instant likenesses always use it; 0 turns it off")
            preset = gr.Dropdown(preset_choices(services), value="", label="Style preset")
            prompt = gr.Textbox(label="Prompt", lines=2, placeholder="smiling, wind in the hair, golden hour",
                                elem_id="animate-prompt")
            negative = gr.Textbox(label="Negative prompt", value="blurry, deformed, low quality")
            init_image = gr.Image(label="Start from a portrait (optional)", type="pil", sources=["upload", "clipboard"],
                                  elem_id="animate-init")
            sent_note = gr.Markdown(visible=False, elem_id="animate-sent-note")  # what "Send to Animate" brought
            from_reference = gr.Checkbox(label="No upload: start from the likeness's reference face", value=False,
                                         elem_id="animate-from-reference")
            portrait_mode = gr.Radio(
                list(PORTRAIT_MODES), value="sparsectrl", label="Portrait mode", elem_id="animate-portrait-mode",
                info="sparsectrl: the portrait is the first keyframe (v3 motion module, keeps the face); "
                     "video2video: re-noises the portrait in every frame (works with camera motion)",
            )
            end_image = gr.Image(label="End on this image (optional, sparsectrl)", type="pil",
                                 sources=["upload", "clipboard"], elem_id="animate-end")
            keyframe_strength = gr.Slider(0, MAX_KEYFRAME_STRENGTH, value=1.0, step=0.05,
                                          label="Keyframe strength (sparsectrl)", elem_id="animate-keyframe-strength")
            strength = gr.Slider(0.05, 1.0, value=0.6, step=0.05,
                                 label="How far to move from the portrait (video2video)")
            with gr.Row():
                motions = gr.CheckboxGroup(list(MOTION_LORAS), label="Camera motion")
                motion_weight = gr.Slider(0, 1.5, value=0.8, step=0.05, label="Motion strength")
            with gr.Accordion("Advanced", open=False, elem_id="animate-advanced"):
                frames = gr.Slider(2, top.frames, value=min(16, top.frames), step=1,
                                   label="Frames (over 16 uses sliding context windows)",
                                   elem_id="animate-frames")
                fps = gr.Slider(1, 30, value=8, step=1, label="Frames per second")
                steps = gr.Slider(1, min(60, top.steps), value=min(25, top.steps), step=1, label="Steps",
                                  elem_id="animate-steps")
                guidance = gr.Slider(0, 15, value=7.5, step=0.5, label="Guidance")
                seed = seed_box(elem_id="animate-seed")
                interpolate_mode = gr.Radio(list(INTERPOLATIONS), value="none", label="Double the frame rate")
                fast = gr.Checkbox(label="Fast (AnimateDiff-Lightning, 4 steps)", value=False,
                                   interactive=fast_available(services.manager),
                                   info=None if fast_available(services.manager) else
                                   "needs: python -m portrait_studio download --roles animatediff_lightning")
            run = gr.Button("Animate", variant="primary", elem_id="animate-run",
                            interactive=gate.interactive("animate"))
            line = JobLine(services, TASK, tokens)  # one progress bar with the phase, Cancel while it runs
            status = StatusLine("animate-status-line")  # keeps the last error in words
            gate.notice({"animate": run})
        with gr.Column(scale=3):
            video = gr.Video(label="MP4", elem_id="animate-video", autoplay=True, loop=True)
            gif = gr.Image(label="GIF", type="filepath", interactive=False, elem_id="animate-gif")
            frames_zip = gr.File(label="Frames (zip)")
            notes = gr.Markdown(elem_id="animate-notes")
            send_to_talk = gr.Button("Send first frame to Talk")

    @status.track
    @tracked(services, TASK)
    @on_gpu(seconds=gpu_budgets.animate(services))
    def on_animate(slug, weight, preset_id, prompt_text, negative_text, start_image, move, motion_names, m_weight,
                   n_frames, frame_rate, step_count, cfg, seed_value, interp, fast_mode,
                   mode="sparsectrl", last_image=None, key_strength=1.0, use_reference=False, face_level=0.7,
                   request: gr.Request = None, progress=gr.Progress()):
        owner = request_owner(services, request)
        limits.check_text(services.settings, "Prompt", prompt_text)
        limits.check_text(services.settings, "Negative prompt", negative_text)
        limits.admit(services, owner, TASK, steps=int(step_count or 0), frames=int(n_frames or 0))
        like = None
        if slug:
            record = call_service(services.registry.get, owner, slug)
            like = Likeness.from_record(record, float(weight), float(face_level) if record.is_instant else None)
        if use_reference and not isinstance(start_image, Image.Image):
            if like is None:
                raise gr.Error("Choose a likeness to start from its reference face, or upload a portrait.")
            start_image = call_service(like.reference_portrait)
        text = prompt_text or ""
        if preset_id:
            from portrait_studio.stylize.presets import get_preset

            chosen = call_service(get_preset, services.settings, preset_id)
            subject = like.trigger if like and like.trigger else ("a person" if like and like.is_instant else None)
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
            portrait_mode=str(mode or "sparsectrl"),
            end_image=last_image if isinstance(last_image, Image.Image) else None,
            keyframe_strength=float(1.0 if key_strength is None else key_strength),
            interpolate=interp,
        )
        from portrait_studio.animate.service import animate  # torch and diffusers: loaded on first use

        session = session_key(request)
        token = tokens.start(session, TASK)
        try:
            out_dir = services.output_dir(owner, TASK)
            with limits.time_budget(services.settings, tokens, session, TASK):
                result = call_service(animate, services.manager, req, out_dir, progress_fn(progress), token)
        finally:
            tokens.finish(session, TASK, token)
        extra = [f"{result.frames} frames at {result.fps} fps, seed {result.seed}",
                 f"mode {result.metadata['mode']}, motion module {result.metadata['motion_model']}"]
        return str(result.mp4_path), str(result.gif_path), str(result.frames_zip), notes_markdown(result.warnings,
                                                                                                   extra)

    results = [video, gif, frames_zip, notes]
    line.attach(results)
    event = line.on(
        run.click, on_animate,
        inputs=[likeness, likeness_weight, preset, prompt, negative, init_image, strength, motions, motion_weight,
                frames, fps, steps, guidance, seed, interpolate_mode, fast,
                portrait_mode, end_image, keyframe_strength, from_reference, face_strength],
        outputs=results,
        api_name="animate",
        **GPU_QUEUE,
    )

    status.follow(event)
    check_on_arrival(init_image, status.markdown, services.settings)
    check_on_arrival(end_image, status.markdown, services.settings)
    return {"likeness": likeness, "init_image": init_image, "gif": gif, "send_to_talk": send_to_talk,
            "job_line": line, "preset": preset, "prompt": prompt, "negative": negative, "seed": seed,
            "sent_note": sent_note}
