"""Talk tab: a portrait plus speech becomes a talking-head video (MP4 with the audio)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from portrait_studio.services import Services
from portrait_studio.talk.portrait_source import choose_portrait
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
from ui.status_line import StatusLine
from ui.upload_check import check_on_arrival, video_problem
from ui.widgets import likeness_dropdown, notes_markdown

TASK = "talk"


def build(services: Services, tokens: CancelTokens) -> dict[str, gr.Component]:
    gate = ActionGate(services, ["talk"])
    with gr.Row():
        with gr.Column(scale=2):
            portrait = gr.Image(label="Portrait (one clear face)", type="pil", sources=["upload", "clipboard"],
                                elem_id="talk-portrait")
            likeness = likeness_dropdown("…or a likeness's reference face (an uploaded portrait wins)",
                                         elem_id="talk-likeness")
            audio = gr.Audio(label="Speech (wav, mp3, m4a, ogg, flac or the microphone)", type="filepath",
                             sources=["upload", "microphone"], elem_id="talk-audio")
            with gr.Row():
                still = gr.Checkbox(label="Still head (lips and expression only)", value=False)
                enhance = gr.Checkbox(label="Enhance face (GFPGAN)", value=False)
            engine = gr.Radio([("SadTalker (fast)", "sadtalker"), ("AniPortrait (studio quality, large GPU)",
                                                                   "aniportrait")],
                              value="sadtalker", label="Engine", elem_id="talk-engine",
                              info="AniPortrait renders with video diffusion: photorealistic, much slower")
            with gr.Accordion("Advanced", open=False, elem_id="talk-advanced"):
                expression = gr.Slider(0, 3, value=1.0, step=0.1, label="Expression scale")
                pose_style = gr.Slider(0, 45, value=0, step=1, label="Head-motion style")
                mode = gr.Radio(["crop", "full"], value="crop", label="Output", info="the face crop, or pasted back")
                size = gr.Radio([256, 512], value=256, label="Renderer size")
                steps = gr.Slider(1, 50, value=25, step=1, label="Denoising steps (AniPortrait)",
                                  elem_id="talk-steps")
                ref_video = gr.Video(label="Reference video (head motion and blinks)", sources=["upload"],
                                     elem_id="talk-ref-video", height=200)
                gr.Markdown("Optional: the portrait moves its head and blinks as the face in this video does, "
                            "starting from its own pose (the video's first frame is the rest pose). It replaces "
                            "the head motion from speech, so *Still head* and *Head-motion style* do not apply. "
                            "A shorter video plays back and forth; a longer one is cut.",
                            elem_id="talk-ref-video-note")
            run = gr.Button("Make it talk", variant="primary", elem_id="talk-run",
                            interactive=gate.interactive("talk"))
            line = JobLine(services, TASK, tokens)  # one progress bar with the phase, Cancel while it runs
            status = StatusLine("talk-status-line")  # keeps the last error in words
            gate.notice({"talk": run})
        with gr.Column(scale=3):
            video = gr.Video(label="Talking head", elem_id="talk-video")
            notes = gr.Markdown(elem_id="talk-notes")

    @status.track
    @tracked(services, TASK)
    @on_gpu(seconds=gpu_budgets.talk(services))
    def on_talk(image, slug, speech, still_head, restore, expr, style, out_mode, renderer, engine_name, n_steps,
                reference, request: gr.Request, progress=gr.Progress()):
        owner = request_owner(services, request)
        record = call_service(services.registry.get, owner, slug) if slug else None
        choice = call_service(choose_portrait, image, record.name if record else None,
                              record.reference_path if record else None)
        image, source_note = choice.image, choice.note
        if not speech:
            raise gr.Error("Add speech: upload an audio file or record with the microphone.")
        if out_mode not in ("crop", "full") or int(renderer) not in (256, 512):
            raise gr.Error("Choose output crop or full, and renderer 256 or 512.")
        limits.check_disk(services.settings, services.settings.outputs_dir / owner)
        from portrait_studio.talk.service import TalkOptions, talk  # torch and SciPy: loaded on first use

        options = TalkOptions(still=bool(still_head), expression_scale=float(expr), pose_style=int(style),
                              mode=out_mode, size=int(renderer), enhance=bool(restore), engine=str(engine_name),
                              steps=int(n_steps), reference_video=Path(reference) if reference else None)
        session = session_key(request)
        token = tokens.start(session, TASK)
        try:
            out_path = services.output_dir(owner, TASK) / "talk.mp4"
            with limits.time_budget(services.settings, tokens, session, TASK):
                result = call_service(talk, image, Path(speech), out_path, limits.effective_settings(
                    services.settings), options, services.manager, progress_fn(progress), token)
        finally:
            tokens.finish(session, TASK, token)
        extra = [source_note, f"{result.frames} frames, {result.duration:.2f} s"]
        return str(result.video_path), notes_markdown(result.warnings, extra)

    line.attach([video, notes])
    event = line.on(
        run.click, on_talk,
        inputs=[portrait, likeness, audio, still, enhance, expression, pose_style, mode, size, engine, steps,
                ref_video],
        outputs=[video, notes],
        api_name="talk",
        **GPU_QUEUE,
    )
    status.follow(event)
    check_on_arrival(portrait, status.markdown, services.settings)
    check_on_arrival(ref_video, status.markdown, services.settings, problem=video_problem)
    return {"portrait": portrait, "likeness": likeness, "job_line": line}
