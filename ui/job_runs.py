"""A tab's long job as a visitor job (``portrait_studio.visitor_jobs``): one status line with one progress bar,
a Cancel button shown only while the job waits or runs, and the tab's results again after a page reload.

A tab uses it in three lines::

    line = JobLine(services, "stylize")              # where the status line goes; later line.attach(outputs)
    @tracked(services, "stylize")                                          # outermost, above @on_gpu
    def on_generate(..., request: gr.Request = None, progress=gr.Progress()): ...
    line.on(run.click, on_generate, inputs=[...], outputs=[...], api_name="stylize", **GPU_QUEUE)

``line.on`` first registers a *waiting* job for the page (no queue, instant), then queues the handler;
``tracked`` claims that job when the handler's turn comes (or makes one, for API calls), runs it with the job's
progress and cancel token, and stores what the handler returned as the job's result. The page polls the job
with a ``gr.Timer`` while it is active, so a reloaded page (or another tab of the same visitor) shows the same
job, its progress and its result, and can cancel it.
"""

from __future__ import annotations

import functools
import html
import inspect
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from portrait_studio.errors import CancelledError, PortraitStudioError
from portrait_studio.services import Services
from portrait_studio.visitor_jobs import VisitorJob, running_job
from ui.common import CancelTokens, request_owner, session_key

log = logging.getLogger(__name__)

TITLES = {"stylize": "Stylize", "animate": "Animate", "talk": "Talk", "check_photos": "Photo check",
          "train": "Training"}
STATE_WORDS = {"waiting": "waiting for its turn", "running": "running", "succeeded": "done",
               "failed": "failed", "cancelled": "cancelled", "interrupted": "interrupted"}
POLL_SECONDS = 1.0


# ---- results: what a handler returned, as JSON and back -------------------------------------------------
def encode_outputs(values: Any, folder: Callable[[], Path]) -> Any:
    """JSON for a handler's return value: pictures are saved as PNG (in ``folder()``), tables as records."""
    from PIL import Image

    if values is None or isinstance(values, str | int | float | bool):
        return values
    if isinstance(values, list | tuple):
        return [encode_outputs(v, folder) for v in values]
    if isinstance(values, Image.Image):
        path = folder() / f"picture-{time.monotonic_ns()}.png"
        values.save(path)
        return {"picture": str(path)}
    if type(values).__name__ == "DataFrame":
        return {"table": values.to_dict(orient="split")}
    # Anything else (a component update, the photo check's verdict state) is not restored: a reloaded page
    # has an empty upload box, and a verdict restored beside other photos would refuse them.
    return {"skip": True}  # a component update (a timer...): nothing to restore


def decode_outputs(values: Any) -> Any:
    """The inverse of :func:`encode_outputs`; raises FileNotFoundError when a result file is gone."""
    if isinstance(values, list):
        return [decode_outputs(v) for v in values]
    if isinstance(values, dict):
        if "picture" in values:
            return _existing(values["picture"])
        if "table" in values:
            import pandas as pd

            split = values["table"]
            return pd.DataFrame(split["data"], columns=split["columns"])
        if values.get("skip"):
            return gr.skip()
    if isinstance(values, str) and Path(values).is_absolute() and Path(values).suffix and not Path(values).exists():
        raise FileNotFoundError(values)  # a result file the janitor deleted
    return values


def _existing(path: str) -> str:
    if not Path(path).is_file():
        raise FileNotFoundError(path)
    return path


# ---- the handler side ---------------------------------------------------------------------------------
def _error_text(exc: BaseException) -> str:
    if isinstance(exc, gr.Error):
        return str(exc.message)
    if isinstance(exc, PortraitStudioError):
        return str(exc)
    return f"Something went wrong on our side ({type(exc).__name__}). The details are in the server log."


def tracked(services: Services, kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run a tab handler as a visitor job of ``kind`` (see the module doc). Put it above ``@on_gpu``."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind_partial(*args, **kwargs)
            request = next((v for v in bound.arguments.values() if isinstance(v, gr.Request)), None)
            owner = request_owner(services, request)
            jobs, session = services.visitor_jobs, session_key(request)
            job = jobs.claim(owner, kind, session) or jobs.create(owner, kind, TITLES.get(kind, kind), session)
            try:
                token = jobs.start(owner, job.job_id)
            except CancelledError as exc:
                raise gr.Error(str(exc), print_exception=False) from exc
            try:
                with running_job(jobs, owner, job.job_id):
                    outputs = fn(*args, **kwargs)
            except BaseException as exc:
                if token.cancelled:
                    jobs.end_cancelled(owner, job.job_id, message=_error_text(exc))
                else:
                    jobs.fail(owner, job.job_id, _error_text(exc))
                raise
            folder: list[Path] = []

            def results_folder() -> Path:
                if not folder:
                    folder.append(services.output_dir(owner, "jobs"))
                return folder[0]

            try:
                result = encode_outputs(outputs, results_folder)
            except Exception:  # noqa: BLE001 - the page got its results; only the history misses them
                log.exception("could not keep the result of %s job %s", kind, job.job_id)
                result = None
            if token.cancelled:
                jobs.end_cancelled(owner, job.job_id, result, "Cancelled; what finished before the cancel is kept.")
            else:
                jobs.succeed(owner, job.job_id, result)
            return outputs

        return run

    return wrap


# ---- the page side ------------------------------------------------------------------------------------
def status_html(job: VisitorJob | None, note: str = "") -> str:
    """One line per job: what, its state, the phase message, one progress bar while it is active."""
    if job is None:
        return ""
    title = html.escape(TITLES.get(job.kind, job.kind))
    state = STATE_WORDS.get(job.state, job.state)
    if job.state == "cancelled" and job.partial:
        state = "cancelled — the images finished before the cancel are kept"
    parts = [f"<b>{title}</b>", html.escape(state)]
    message = job.error or job.message
    if message and message not in ("done", "failed") and message != state and not job.partial:
        parts.append(html.escape(message))
    if note:
        parts.append(html.escape(note))
    bar = ""
    if job.active:
        percent = round(job.fraction * 100)
        bar = (f'<progress value="{job.fraction:.3f}" max="1" style="width:60%;vertical-align:middle"></progress>'
               f" {percent}%")
    css = "color:#b42318" if job.state == "failed" else ""
    return (f'<div class="ps-job ps-job-{job.state}" data-job="{html.escape(job.job_id)}" style="{css}">'
            f"{' · '.join(parts)} {bar}</div>")


class JobLine:
    """A tab's status line for its newest job, with Cancel; see the module doc."""

    def __init__(self, services: Services, kind: str, tokens: CancelTokens | None = None) -> None:
        self.services = services
        self.kind = kind
        self.tokens = tokens  # the handlers' tokens: their marker files reach a ZeroGPU worker
        self.outputs: list[Any] = []
        with gr.Row(equal_height=False):
            self.status = gr.HTML("", elem_id=f"{kind}-job", padding=False)
            self.cancel = gr.Button("Cancel", variant="stop", size="sm", visible=False, scale=0, min_width=90,
                                    elem_id=f"{kind}-cancel")
        self.state = gr.State({})  # {"job": id, "live": this page's call delivers the outputs, "shown": ...}
        self.timer = gr.Timer(POLL_SECONDS, active=False)

    def attach(self, outputs: list[Any]) -> JobLine:
        """Wire polling, Cancel and the page-load reconnect; ``outputs`` are what the tab's handler returns to."""
        self.outputs = list(outputs)
        line = [self.state, self.status, self.cancel, self.timer]
        self.timer.tick(self._tick, [self.state], [*line, *outputs], api_name=False, show_progress="hidden",
                        queue=False)
        self.cancel.click(self._cancel, [self.state], line, api_name=False, show_progress="hidden", queue=False)
        root = gr.context.Context.root_block
        if root is not None:  # a reloaded page shows the visitor's newest job of this kind, running or done
            root.load(self._tick, [self.state], [*line, *outputs], api_name=False, show_progress="hidden",
                      queue=False)
        return self

    def on(self, trigger: Callable[..., Any], fn: Callable[..., Any], *, inputs: list[Any], outputs: list[Any],
           api_name: str | bool | None = None, **queue: Any) -> Any:
        """``trigger`` (e.g. ``run.click``) registers the page's waiting job, then queues ``fn`` (tracked)."""
        first = trigger(self._begin, None, [self.state, self.status, self.cancel, self.timer], queue=False,
                        api_name=False, show_progress="hidden")
        return first.then(fn, inputs, outputs, api_name=api_name, show_progress="hidden", **queue)

    # handlers -------------------------------------------------------------------------------------------
    def _owner(self, request: gr.Request | None) -> str:
        return request_owner(self.services, request)

    def _begin(self, request: gr.Request):
        job = self.services.visitor_jobs.create(self._owner(request), self.kind, TITLES.get(self.kind, self.kind),
                                                session_key(request))
        return ({"job": job.job_id, "live": True, "shown": False}, status_html(job), gr.Button(visible=True),
                gr.Timer(active=True))

    def _find(self, owner: str, state: dict) -> VisitorJob | None:
        jobs = self.services.visitor_jobs
        if state.get("job"):
            try:
                return jobs.get(owner, state["job"])
            except PortraitStudioError:
                return None
        return jobs.latest(owner, self.kind)

    def _tick(self, state: dict | None, request: gr.Request):
        state = dict(state or {})
        skips = [gr.skip()] * len(self.outputs)
        job = self._find(self._owner(request), state)
        if job is None:
            return {}, "", gr.Button(visible=False), gr.Timer(active=False), *skips
        state["job"] = job.job_id
        note = ""
        outputs = skips
        if job.done and not state.get("shown"):
            state["shown"] = True
            if not state.get("live") and job.result is not None:
                outputs, note = self._restored(job)
        return (state, status_html(job, note), gr.Button(visible=job.active), gr.Timer(active=job.active),
                *outputs)

    def _restored(self, job: VisitorJob) -> tuple[list[Any], str]:
        try:
            values = decode_outputs(job.result)
        except FileNotFoundError:
            return [gr.skip()] * len(self.outputs), "its result files were cleaned up"
        values = values if isinstance(values, list) else [values]
        if len(values) != len(self.outputs):
            return [gr.skip()] * len(self.outputs), ""
        return values, ""

    def _cancel(self, state: dict | None, request: gr.Request):
        owner = self._owner(request)
        state = dict(state or {})
        job = self._find(owner, state)
        if job is None or not job.active:
            job = next((j for j in self.services.visitor_jobs.list(owner, self.kind) if j.active), None)
        if job is None:
            gr.Info("Nothing is running here.")
            return state, gr.skip(), gr.Button(visible=False), gr.Timer(active=False)
        job = self.services.visitor_jobs.cancel(owner, job.job_id)
        if self.tokens is not None and job.session:  # the call may run in another process (ZeroGPU)
            self.tokens.cancel(job.session, job.kind)
        state["job"] = job.job_id
        # The timer keeps polling until the job has really stopped: the page never freezes on "running".
        return state, status_html(job), gr.Button(visible=job.active), gr.Timer(active=True)
