"""Assemble the Gradio app from the tab modules and wire the "send to" buttons between tabs."""

from __future__ import annotations

import os

import gradio as gr

from portrait_studio.services import Services
from ui import about, animate_tab, jobs_panel, library_tab, stylize_tab, talk_tab, train_tab
from ui.common import TINY_BANNER, CancelTokens
from ui.gpu import GPU_SLOT, check_gpu_events
from ui.send_to import wire_send_to
from ui.widgets import refresh_likenesses

CSS = """
#tiny-banner {background: #fff4d6; border: 1px solid #e0b04c; border-radius: 8px; padding: 6px 12px;}
"""


PUBLIC_NOTE = (
    "Your photos, likenesses and results are private to you: to your login when you are signed in, else to "
    "this browser. Uploads and results are deleted after {hours:g} hours. Everything made here is labelled "
    "as AI-generated."
)


def _cache_policy(services: Services) -> tuple[int, int]:
    """Gradio's own cache sweep: (how often, how old) in seconds, from ``cleanup_after_hours``."""
    age = max(int(services.settings.cleanup_after_hours * 3600), 60)
    return min(3600, max(age // 4, 60)), age


def build_app(services: Services) -> gr.Blocks:
    GPU_SLOT.lease = services.lease  # model handlers share the device with training workers and the CLI
    tokens = CancelTokens(services.settings.home / "cancel")  # files reach a ZeroGPU worker too
    public = services.settings.public
    with gr.Blocks(title="Portrait Studio", analytics_enabled=False, delete_cache=_cache_policy(services)) as demo:
        gr.Markdown("# Portrait Studio\nTrain your likeness, then stylize it, animate it and make it talk.")
        if public:
            # On a Space with `hf_oauth: true` visitors can sign in: their things then follow their account.
            if os.environ.get("OAUTH_CLIENT_ID"):
                gr.LoginButton()
            gr.Markdown(PUBLIC_NOTE.format(hours=services.settings.cleanup_after_hours), elem_id="public-note")
        if services.settings.profile == "tiny":
            gr.Markdown(TINY_BANNER, elem_id="tiny-banner")
        with gr.Tabs() as tabs:
            with gr.Tab("Train Likeness", id="train"):
                train = train_tab.build(services)
            with gr.Tab("Stylize", id="stylize") as stylize_page:
                stylize = stylize_tab.build(services, tokens)
            with gr.Tab("Animate", id="animate") as animate_page:
                animate = animate_tab.build(services, tokens)
            with gr.Tab("Talk", id="talk") as talk_page:
                talk = talk_tab.build(services, tokens)
            with gr.Tab("Library", id="library") as library_page:
                library = library_tab.build(services)
        jobs_panel.build(services)  # every job of this visitor, also after a reload; Cancel for any
        about.build(services)

        refresh = refresh_likenesses(services)
        for page, picker in ((stylize_page, stylize.get("likeness")), (animate_page, animate["likeness"]),
                             (talk_page, talk["likeness"])):
            if picker is not None:
                page.select(refresh, [picker], [picker], api_name=False)
        library_page.select(library["listing"], None, [library["gallery"], library["choice"]], api_name=False)
        demo.load(library["listing"], None, [library["gallery"], library["choice"]], api_name=False)

        wire_send_to(services, tabs, stylize, animate, talk)
        del train
    check_gpu_events(demo)
    return demo
