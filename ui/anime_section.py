"""Photo to anime (AnimeGANv2): its own section of the Stylize tab, styles by readable names, Send buttons."""

from __future__ import annotations

from typing import Any

import gradio as gr
from PIL import Image

from portrait_studio.media.outputs import save_png
from portrait_studio.services import Services
from portrait_studio.stylize.anime_options import DEFAULT_STYLE, MODES, STYLES
from ui import gpu_budgets
from ui.common import call_service, progress_fn, request_owner
from ui.gpu import GPU_QUEUE, on_gpu
from ui.readiness import ActionGate
from ui.status_line import StatusLine
from ui.upload_check import check_on_arrival
from ui.widgets import notes_markdown

# What each published generator looks like, in a hobbyist's words (ids stay the values).
STYLE_NAMES = {
    "face_paint_512_v2": "Face paint v2 — soft anime portrait (best for faces)",
    "face_paint_512_v1": "Face paint v1 — stronger lines, more stylised",
    "paprika": "Paprika — film-like colours, for whole scenes",
    "celeba_distill": "Webtoon — flat colours, small faces",
}
MODE_NAMES = {"face": "Just the face (aligned and cropped)", "full": "The whole photo"}


def style_choices() -> list[tuple[str, str]]:
    return [(STYLE_NAMES.get(style, style.replace("_", " ")), style) for style in STYLES]


def build_anime_section(services: Services, gate: ActionGate) -> dict[str, Any]:
    """The section's components; call inside the Stylize tab, below the main row (``gate`` switches the
    button off when the anime weights are missing)."""
    with gr.Accordion("Photo to anime (AnimeGANv2)", open=False, elem_id="anime-section"):
        with gr.Row():
            with gr.Column():
                anime_in = gr.Image(label="Photo", type="pil", sources=["upload", "clipboard"], elem_id="anime-input")
                default = DEFAULT_STYLE if DEFAULT_STYLE in STYLES else STYLES[0]
                anime_style = gr.Dropdown(style_choices(), value=default, label="Style", elem_id="anime-style")
                anime_mode = gr.Radio([(MODE_NAMES.get(m, m), m) for m in MODES], value="face",
                                      label="What to turn into anime")
                anime_run = gr.Button("Make it anime", variant="primary", elem_id="anime-run",
                                      interactive=gate.interactive("anime"))
                status = StatusLine("anime-status-line")  # keeps the last error in words
            with gr.Column():
                anime_out = gr.Image(label="Anime", type="filepath", interactive=False, elem_id="anime-output")
                anime_notes = gr.Markdown()
                with gr.Row():
                    send_to_animate = gr.Button("Send to Animate", elem_id="anime-send-animate")
                    send_to_talk = gr.Button("Send to Talk", elem_id="anime-send-talk")

    @status.track
    @on_gpu(seconds=gpu_budgets.anime)
    def on_anime(image, style, mode, request: gr.Request, progress=gr.Progress()):
        if not isinstance(image, Image.Image):
            raise gr.Error("Add a photo to turn into anime.")
        if style not in STYLES or mode not in MODES:
            raise gr.Error(f"Choose a style ({', '.join(STYLE_NAMES.get(s, s) for s in STYLES)}) and what to turn "
                           "into anime.")
        from portrait_studio.stylize.anime import anime_portrait  # torch and OpenCV: loaded on first use

        result = call_service(anime_portrait, image, services.settings, style=style, mode=mode,
                              progress=progress_fn(progress), manager=services.manager)
        out = services.output_dir(request_owner(services, request), "anime") / f"anime-{style}.png"
        save_png(result.image, out, result.metadata)
        return str(out), notes_markdown(result.warnings)

    event = anime_run.click(on_anime, [anime_in, anime_style, anime_mode], [anime_out, anime_notes],
                            api_name="anime", **GPU_QUEUE)
    status.follow(event, "Done: anime picture ready.")
    check_on_arrival(anime_in, status.markdown, services.settings)
    return {"output": anime_out, "run": anime_run, "send_to_animate": send_to_animate, "send_to_talk": send_to_talk}
