"""The baseline of ``startup_bench``: a bare Gradio app with Portrait Studio's five tabs, each holding an
image, a textbox and a button. ``python bench/bare_app.py PORT``."""

from __future__ import annotations

import sys

import gradio as gr

TABS = ("Train Likeness", "Stylize", "Animate", "Talk", "Library")


def build() -> gr.Blocks:
    with gr.Blocks(title="Bare", analytics_enabled=False) as demo:
        with gr.Tabs():
            for name in TABS:
                with gr.Tab(name):
                    image = gr.Image(label="Image")
                    text = gr.Textbox(label="Text")
                    button = gr.Button("Run")
                    button.click(lambda picture, words: (picture, words), [image, text], [image, text])
    return demo


if __name__ == "__main__":
    build().launch(server_name="127.0.0.1", server_port=int(sys.argv[1]))
