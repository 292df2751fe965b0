"""The read-only "About this machine" accordion: the ``doctor`` report, without the smoke run.

On a public deployment visitors see only which features are ready, never host details (paths, versions,
device names, memory): :func:`portrait_studio.models.doctor.public_view`.
"""

from __future__ import annotations

import gradio as gr

from portrait_studio.models.doctor import build_report, format_table, public_view
from portrait_studio.services import Services


def report_text(services: Services) -> str:
    if services.settings.public:
        view = public_view(build_report(services.settings, with_machine=False))
        ready = [r["role"] for r in view["roles"] if r["ready"]]
        missing = [r["role"] for r in view["roles"] if not r["ready"]]
        return (
            f"GPU: {'yes' if view['accelerator'] else 'no'}\n"
            f"Models ready: {', '.join(ready) or 'none'}\n"
            f"Models not installed: {', '.join(missing) or 'none'}"
        )
    report = build_report(services.settings)
    problems = report.problems()
    return format_table(report) + ("\n\nProblems:\n" + "\n".join(problems) if problems else "\n\nAll is well.")


def build(services: Services) -> None:
    # The report imports torch and probes the device: made when the accordion is opened, not while the first
    # page is built (fast start).
    with gr.Accordion("About this machine", open=False, elem_id="about-machine") as accordion:
        text = gr.Textbox(value="Checking this machine…", lines=14, max_lines=40, interactive=False,
                          show_label=False, elem_id="about-machine-report")
        check = gr.Button("Check again", size="sm")
    for event in (accordion.expand, check.click):
        event(lambda: report_text(services), None, [text], api_name=False)
