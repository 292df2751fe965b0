"""Assemble the Gradio app from the tab modules."""

from __future__ import annotations

import gradio as gr

from portrait_studio.services import Services
from ui import library_tab, stylize_tab
from ui.common import TINY_BANNER, CancelTokens

CSS = """
#tiny-banner {background: #fff4d6; border: 1px solid #e0b04c; border-radius: 8px; padding: 6px 12px;}
"""


def build_app(services: Services) -> gr.Blocks:
    tokens = CancelTokens()
    with gr.Blocks(title="Portrait Studio", analytics_enabled=False) as demo:
        gr.Markdown("# Portrait Studio\nTrain your likeness, then stylize it, animate it and make it talk.")
        if services.manager.locator.settings.profile == "tiny":
            gr.Markdown(TINY_BANNER, elem_id="tiny-banner")
        with gr.Tabs():
            with gr.Tab("Stylize", id="stylize"):
                stylize_tab.build(services, tokens)
            with gr.Tab("Library", id="library") as library:
                lib = library_tab.build(services)
        library.select(lib["listing"], None, [lib["gallery"], lib["choice"]], api_name=False)
        demo.load(lib["listing"], None, [lib["gallery"], lib["choice"]], api_name=False)
    return demo
