"""The "Your jobs" panel: every job of this visitor (photo checks, stylize, animate, talk and training), newest
first, with state, progress and the phase message, and Cancel for any that still waits or runs.

It reads the visitor's namespace only (``ui.common.request_owner``): on a public app that is the visitor's
login or browser cookie, so a reloaded page, or a second tab of the same browser, sees the same list. It
polls while it is open; closed, it costs nothing. When a page closes, the calls it had queued never start
(Gradio drops them), so their waiting jobs are ended here too.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass

import gradio as gr

from portrait_studio.errors import PortraitStudioError
from portrait_studio.services import Services
from ui.common import call_service, request_owner, session_key
from ui.job_runs import STATE_WORDS, TITLES

POLL_SECONDS = 2.0
TRAIN_PREFIX, JOB_PREFIX = "train:", "job:"


@dataclass
class Row:
    key: str  # "job:<id>" or "train:<id>": what Cancel acts on
    what: str
    title: str
    state: str
    fraction: float
    message: str
    created: float
    active: bool


def job_rows(services: Services, owner: str) -> list[Row]:
    """The visitor's jobs of both kinds, newest first."""
    rows = [Row(JOB_PREFIX + j.job_id, TITLES.get(j.kind, j.kind), j.title, j.state, j.fraction,
                j.error or ("" if j.message in ("done", "failed") else j.message), j.created, j.active)
            for j in services.visitor_jobs.list(owner)]
    for status in services.jobs.list(owner):
        message = status.error or status.message
        if status.queue_position:
            message = f"waiting in line: position {status.queue_position}"
        elif status.max_steps and not status.done:
            message = f"step {status.step}/{status.max_steps}" + (f" · {message}" if message else "")
        rows.append(Row(TRAIN_PREFIX + status.job_id, "Training", status.name, status.state, status.fraction,
                        message, status.created, not status.done))
    return sorted(rows, key=lambda r: r.created, reverse=True)


def rows_html(rows: list[Row]) -> str:
    if not rows:
        return "<p>No jobs yet. What you start in any tab shows up here, and keeps running if you reload.</p>"
    lines = ["<table class='ps-jobs'><thead><tr><th>Started</th><th>Job</th><th>State</th><th>Progress</th>"
             "<th>Details</th></tr></thead><tbody>"]
    for row in rows:
        started = time.strftime("%H:%M:%S", time.localtime(row.created))
        title = row.what if row.title in (row.what, "") else f"{row.what}: {row.title}"
        bar = (f'<progress value="{row.fraction:.3f}" max="1"></progress> {round(row.fraction * 100)}%'
               if row.active else "")
        state = STATE_WORDS.get(row.state, row.state)
        lines.append(f"<tr data-state='{html.escape(row.state)}'><td>{started}</td><td>{html.escape(title)}</td>"
                     f"<td>{html.escape(state)}</td><td>{bar}</td><td>{html.escape(row.message)}</td></tr>")
    lines.append("</tbody></table>")
    return "".join(lines)


def build(services: Services) -> dict[str, gr.components.Component]:
    with gr.Accordion("Your jobs", open=False, elem_id="jobs-panel") as panel:
        table = gr.HTML(rows_html([]), elem_id="jobs-table")
        with gr.Row():
            choice = gr.Dropdown([], value=None, label="Job to cancel (only waiting or running ones)",
                                 elem_id="jobs-choice", scale=3)
            cancel = gr.Button("Cancel this job", variant="stop", elem_id="jobs-cancel", scale=1)
            refresh = gr.Button("Refresh", scale=1)
    timer = gr.Timer(POLL_SECONDS, active=False)

    def listing(current: str | None, request: gr.Request):
        rows = job_rows(services, request_owner(services, request))
        active = [(f"{r.what}: {r.title} ({STATE_WORDS.get(r.state, r.state)})" if r.title != r.what
                   else f"{r.what} ({STATE_WORDS.get(r.state, r.state)})", r.key) for r in rows if r.active]
        keys = {key for _, key in active}
        value = current if current in keys else (active[0][1] if active else None)
        return rows_html(rows), gr.Dropdown(choices=active, value=value)

    def on_cancel(key: str | None, request: gr.Request):
        owner = request_owner(services, request)
        if not key:
            raise gr.Error("Choose a waiting or running job to cancel.", print_exception=False)
        if key.startswith(TRAIN_PREFIX):
            call_service(services.jobs.cancel, owner, key.removeprefix(TRAIN_PREFIX))
        elif key.startswith(JOB_PREFIX):
            call_service(services.visitor_jobs.cancel, owner, key.removeprefix(JOB_PREFIX))
        else:
            raise gr.Error("Unknown job; refresh the list.", print_exception=False)
        gr.Info("Cancelling: the job stops after its current step.")
        return listing(None, request)

    quiet = {"api_name": False, "show_progress": "hidden", "queue": False}
    panel.expand(listing, [choice], [table, choice], **quiet).then(lambda: gr.Timer(active=True), None, [timer],
                                                                   **quiet)
    panel.collapse(lambda: gr.Timer(active=False), None, [timer], **quiet)
    timer.tick(listing, [choice], [table, choice], **quiet)
    refresh.click(listing, [choice], [table, choice], **quiet)
    cancel.click(on_cancel, [choice], [table, choice], **quiet)

    root = gr.context.Context.root_block
    if root is not None:
        root.load(listing, [choice], [table, choice], **quiet)

        def page_closed(request: gr.Request) -> None:
            try:
                services.visitor_jobs.abandon_session(session_key(request))
            except PortraitStudioError:
                pass

        root.unload(page_closed)
    return {"panel": panel, "table": table, "choice": choice, "cancel": cancel, "timer": timer}
