"""Train Likeness tab: check the photos (with a visual report), then train a LoRA as a background job."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd

from portrait_studio.instant.notes import STORED_NOTE
from portrait_studio.likeness.config import PRESETS, pick_trigger, preset_config
from portrait_studio.likeness.photo_rule import PhotoCount, PhotoVerdict, photos_to_train, rejected_removed
from portrait_studio.services import Services
from ui import gpu_budgets
from ui.common import call_service, load_picture, progress_fn, request_owner
from ui.gpu import GPU_QUEUE, on_gpu, zero_gpu
from ui.job_runs import JobLine, tracked
from ui.readiness import ActionGate
from ui.status_line import StatusLine
from ui.upload_check import check_on_arrival
from ui.widgets import as_text

CONSENT = (
    "I am the person in these photos, or they agreed to this. I will not use the likeness to deceive, "
    "harass or impersonate anyone. Generated images are labelled as AI-generated."
)
ZERO_GPU_NOTE = (
    "Training is switched off on this ZeroGPU Space: a training run takes 10–30 minutes of GPU time, "
    "more than ZeroGPU gives one request. Train on your own GPU (`./launch.sh`) or a Space with a dedicated "
    "GPU, then import the LoRA in Library."
)


def _photo_paths(files: list | None) -> list[Path]:
    return [Path(getattr(f, "name", f)) for f in (files or [])]


THUMB_SIDE = 160


def _thumbnails(files: list | None) -> list:
    """Small copies of the selfies for the gallery (pixels: the upload paths stay private)."""
    from portrait_studio.media.images import load_image

    pictures = []
    for path in _photo_paths(files):
        try:
            picture = load_image(path, min_short_side=THUMB_SIDE).image
        except Exception:  # noqa: BLE001 - a broken file has no thumbnail; the check says why
            continue
        picture.thumbnail((THUMB_SIDE, THUMB_SIDE))
        pictures.append((picture, path.name))
    return pictures


def _verdict_rows(entries) -> pd.DataFrame:
    rows = []
    for e in entries:
        rows.append({
            "photo": e.path.name, "verdict": e.status, "reason": e.reason,
            "similarity": None if e.similarity is None else round(e.similarity, 3),
            "score": None if e.score is None else round(e.score, 3),
            "angle": None if e.angle is None else round(e.angle, 3),
        })
    return pd.DataFrame(rows, columns=["photo", "verdict", "reason", "similarity", "score", "angle"])


def _status_markdown(status) -> str:
    if status is None:
        return "No training job yet."
    parts = [f"**{as_text(status.name)}** — {status.state}"]
    if status.queue_position:
        parts.append(f"waiting in line: position {status.queue_position}")
    if status.max_steps:
        parts.append(f"step {status.step}/{status.max_steps}")
    if status.loss is not None:
        parts.append(f"loss {status.loss:.4f}")
    if status.eta_seconds and not status.done:
        parts.append(f"about {int(status.eta_seconds // 60)} min {int(status.eta_seconds % 60)} s left")
    text = " · ".join(parts)
    if status.message:
        text += f"\n\n{status.message}"
    if status.error:
        text += f"\n\n**Error:** {status.error}"
    if status.state == "succeeded" and status.slug:
        text += f"\n\nSaved to your Library as **{as_text(status.slug)}**."
    if status.random_weights:
        text += "\n\n⚠️ Trained on random-weight test models (tiny profile): this likeness is for testing the flow only."
    return text


def _similarity_frame(status) -> pd.DataFrame:
    points = status.checkpoints if status else []
    return pd.DataFrame({"step": [p.step for p in points], "similarity": [p.best for p in points]})


def _similarity_plot(status) -> gr.ScatterPlot:
    """Points on an x axis from 0 to the last step: one checkpoint is a readable dot, not an empty line
    with the label "6.000000"."""
    last = max(int(getattr(status, "max_steps", 0) or 0), 1)
    # Hidden until there is a job: an empty chart only showed an axis of "training steps" from 0.0 to 1.0.
    return gr.ScatterPlot(_similarity_frame(status), x_lim=[0, last], visible=status is not None)


def build(services: Services) -> dict[str, gr.Component]:
    if zero_gpu():
        gr.Markdown(ZERO_GPU_NOTE)
    rule = PhotoCount.from_settings(services.settings)
    gate = ActionGate(services, ["instant", "train"])
    with gr.Row():
        with gr.Column(scale=2):
            photos = gr.File(label=f"Selfies ({rule.text})", file_count="multiple", file_types=["image"],
                             elem_id="train-photos")
            thumbs = gr.Gallery(label="Your selfies", columns=5, height=200, allow_preview=False,
                                elem_id="train-thumbs")
            with gr.Row():
                check = gr.Button("Check photos", elem_id="train-check")
                remove_rejected = gr.Button("Remove rejected", size="sm", elem_id="train-remove-rejected")
            check_line = JobLine(services, "check_photos")  # the check's progress, Cancel, and result after reload
            name = gr.Textbox(label="Name of the likeness", placeholder="e.g. Ada", elem_id="train-name")
            preset = gr.Radio(list(PRESETS), value="Balanced", label="Training preset",
                              info="Quick: a first look (UNet only). Balanced: the EasyPhoto recipe (UNet and text "
                                   "encoder). Max: longest")
            steps = gr.Number(value=0, precision=0, label="Steps (0 = from the preset)", elem_id="train-steps")
            keep = gr.Checkbox(label="Keep my photos after training (otherwise they are deleted)", value=False)
            consent = gr.Checkbox(label=CONSENT, value=False, elem_id="train-consent")
            with gr.Row():
                instant = gr.Button("Use now (instant)", variant="primary", elem_id="train-instant",
                                    interactive=gate.interactive("instant"))
                start = gr.Button("Train (better, ~20 min on a GPU)", variant="secondary",
                                  interactive=not zero_gpu() and gate.interactive("train"), elem_id="train-start")
                cancel = gr.Button("Cancel training", variant="stop", visible=False, elem_id="train-cancel")
            status = StatusLine("train-status-line", f"Add {rule.text} of one person, then Check photos.")
            line = status.markdown
            gate.notice({"instant": instant, "train": start})
            gr.Markdown("**Use now** makes an instant likeness in seconds with a face adapter (IP-Adapter Plus "
                        f"Face), no training. {STORED_NOTE} **Train** learns your face into a LoRA: better in "
                        "every style, but it takes a while.")
        with gr.Column(scale=3):
            gr.Markdown("**Photo check**")  # a heading, not a label drawn over the sheet's own title
            sheet = gr.Image(show_label=False, type="pil", interactive=False, elem_id="train-sheet")
            verdicts = gr.Dataframe(_verdict_rows([]), label="Verdicts", interactive=False, wrap=True,
                                    # px for the short columns: percentages broke "rejected" and "similarity"
                                    column_widths=["18%", "88px", "36%", "104px", "64px", "64px"],
                                    elem_id="train-verdicts")
            verdict_state = gr.State(None)
            check_notes = gr.Markdown(elem_id="train-check-notes")
            job_id = gr.State("")
            status_md = gr.Markdown("No training job yet.", elem_id="train-status")
            plot = gr.ScatterPlot(x="step", y="similarity", title="Face similarity per checkpoint", height=220,
                               y_lim=[0, 1], x_lim=[0, 1], x_title="training step", y_title="likeness (0–1)",
                               visible=False, elem_id="train-plot")
            preview = gr.Image(label="Result", interactive=False, height=420, elem_id="train-result")
    timer = gr.Timer(2.0, active=False)

    # Face models run on the GPU too: same queue as every model job.
    @status.track
    @tracked(services, "check_photos")
    @on_gpu(seconds=gpu_budgets.check_photos, task="check_photos")
    def on_check(files, request: gr.Request, progress=gr.Progress()):
        paths = _photo_paths(files)
        call_service(rule.check_upload, len(paths))
        work_dir = services.output_dir(request_owner(services, request), "photo-check")
        from portrait_studio.likeness.photo_check import check_photos  # face models and OpenCV: on first use

        # A preview only (nothing stays in work_dir); Train submits exactly the photos this verdict kept.
        result = call_service(check_photos, paths, services.settings, work_dir, progress=progress_fn(progress))
        verdict = result.verdict
        lines = [("" if verdict.ready else "⚠️ ") + verdict.summary() + f" (face backend: {verdict.backend})"]
        if verdict.rejected:
            lines.append(f"{len(verdict.rejected)} rejected: the table says why; **Remove rejected** takes them "
                         "out of the upload (Train leaves them out anyway).")
        lines += [f"⚠️ {w}" for w in verdict.warnings]
        return result.contact_sheet, _verdict_rows(result.entries), "\n\n".join(lines), verdict.to_dict()

    @status.track
    def on_remove_rejected(files, verdict_data, request: gr.Request):
        if not verdict_data:
            raise gr.Error("Check the photos first: the check decides which ones are rejected.")
        verdict = PhotoVerdict.from_dict(verdict_data)
        remaining = call_service(rejected_removed, verdict, _photo_paths(files))
        kept = verdict.without_rejected()
        return ([str(p) for p in remaining], _thumbnails(remaining), kept.to_dict(),
                f"Removed {len(verdict.rejected)} rejected photo(s). {kept.summary()}")

    @status.track
    def on_start(files, verdict_data, likeness_name, preset_name, step_count, keep_photos, agreed,
                 request: gr.Request):
        if zero_gpu():
            raise gr.Error(ZERO_GPU_NOTE, print_exception=False)
        paths = _photo_paths(files)
        if verdict_data:  # exactly what the check kept
            paths = call_service(photos_to_train, PhotoVerdict.from_dict(verdict_data), paths)
        # Without a check (an API client that never called check_photos) the job's face step decides alone.
        if preset_name not in PRESETS:
            raise gr.Error(f"Choose a preset: {', '.join(PRESETS)}.")
        overrides = {"steps": int(step_count)} if step_count and int(step_count) > 0 else {}
        # Train at the base model's native size (512 for SD1.5); it also fails early when weights are missing.
        overrides["resolution"] = call_service(services.manager.sd_info).default_size
        owner = request_owner(services, request)
        # Each likeness gets its own rare trigger: two likenesses of one owner never share one.
        taken = {record.trigger for record in services.registry.list(owner)}
        overrides["trigger"] = call_service(pick_trigger, f"{owner}/{likeness_name or ''}", taken)
        config = call_service(preset_config, preset_name, max(len(paths), 1), **overrides)
        new_id = call_service(services.jobs.submit, owner, likeness_name or "", paths, config, bool(agreed),
                              bool(keep_photos))
        status = services.jobs.status(owner, new_id)
        text = _status_markdown(status) + f"\n\nTraining on {len(paths)} photos" + (
            " (those the check kept)." if verdict_data else ".")
        # No second job for this likeness while this one waits or runs (the tick enables the button again).
        return new_id, text, _similarity_plot(status), gr.Timer(active=True), gr.Button(interactive=False)

    @status.track
    @on_gpu(seconds=60, task="instant_likeness")
    def on_instant(files, likeness_name, agreed, request: gr.Request, progress=gr.Progress()):
        paths = _photo_paths(files)
        if not paths:
            raise gr.Error("Add your selfies first (one good photo is enough for an instant likeness).")
        owner = request_owner(services, request)
        from portrait_studio.instant.create import create_instant  # torch and face models: loaded on first use

        result = call_service(create_instant, services.manager, services.settings, likeness_name or "", paths,
                              owner=owner, registry=services.registry, consent=bool(agreed),
                              progress=progress_fn(progress))
        record = result.record
        lines = [f"Instant likeness **{record.name}** is in your Library ({result.faces_used} face(s)); pick it "
                 "in Stylize or Animate.", STORED_NOTE, *[f"⚠️ {w}" for w in result.warnings]]
        return "\n\n".join(lines), load_picture(record.reference_path)

    train_ready = not zero_gpu() and gate.interactive("train")

    def on_tick(current: str, request: gr.Request):
        owner = request_owner(services, request)
        jobs = services.jobs.list(owner)
        status = next((j for j in jobs if j.job_id == current), jobs[0] if jobs else None)
        if status is None:
            return (current, "No training job yet.", _similarity_plot(None), None, gr.Timer(active=False),
                    gr.Button(interactive=train_ready))
        picture = None
        if status.state == "succeeded" and status.slug:
            try:
                record = services.registry.get(owner, status.slug)
                picture = load_picture(record.preview_path)
            except Exception:  # deleted from the Library meanwhile
                picture = None
        return (status.job_id, _status_markdown(status), _similarity_plot(status), picture,
                gr.Timer(active=not status.done), gr.Button(interactive=train_ready and status.done))

    @status.track
    def on_cancel(current: str, request: gr.Request):
        owner = request_owner(services, request)
        if not current:  # after a page reload or an app restart: the owner's newest job still running
            current = next((j.job_id for j in services.jobs.list(owner) if not j.done), "")
        if not current:
            raise gr.Error("There is no training job to cancel.")
        status = call_service(services.jobs.cancel, owner, current)
        return _status_markdown(status)

    def checked(verdict_data: dict | None) -> str:
        if not verdict_data:
            return "Checked."
        verdict = PhotoVerdict.from_dict(verdict_data)
        return (f"Check done: {len(verdict.kept)} usable, {len(verdict.rejected)} rejected — "
                + ("Train is ready." if verdict.ready else "not enough to train yet (see the notes)."))

    def training_runs(request: gr.Request):
        """Cancel training is shown only while one of the visitor's training jobs waits or runs."""
        owner = request_owner(services, request)
        return gr.Button(visible=any(not j.done for j in services.jobs.list(owner)))

    check_outputs = [sheet, verdicts, check_notes, verdict_state]
    check_line.attach(check_outputs)
    status.follow(check_line.on(check.click, on_check, inputs=[photos], outputs=check_outputs,
                                api_name="check_photos", **GPU_QUEUE), checked, [verdict_state])
    check_on_arrival(photos, line, services.settings, clear=False)  # says at once which files are not photos
    status.follow(check_line.on(photos.upload, on_check, inputs=[photos], outputs=check_outputs, api_name=False,
                                **GPU_QUEUE), checked, [verdict_state])
    photos.change(_thumbnails, [photos], [thumbs], api_name=False, show_progress="hidden")
    status.follow(remove_rejected.click(on_remove_rejected, [photos, verdict_state],
                                        [photos, thumbs, verdict_state, line], api_name=False,
                                        show_progress="hidden"), lambda text: text,
                  [line])
    started = start.click(on_start, [photos, verdict_state, name, preset, steps, keep, consent],
                          [job_id, status_md, plot, timer, start], api_name="train",
                          show_progress="hidden")  # quick; a refusal goes to the status line, no red badge
    status.follow(started, "Training started: the status below follows it (you may close the page).")
    started.then(training_runs, None, [cancel], api_name=False, show_progress="hidden")
    status.follow(instant.click(on_instant, [photos, name, consent], [status_md, preview],
                                api_name="instant_likeness", **GPU_QUEUE),
                  "Instant likeness ready: it is in your Library.")
    tick_outputs = [job_id, status_md, plot, preview, timer, start]
    timer.tick(on_tick, [job_id], tick_outputs, api_name=False, show_progress="hidden")
    timer.tick(training_runs, None, [cancel], api_name=False, show_progress="hidden", queue=False)
    cancelled = cancel.click(on_cancel, [job_id], [status_md], api_name="cancel_training", show_progress="hidden")
    status.follow(cancelled, "Cancel requested: the status below says when it stopped.")
    # Then keep polling until the worker has really stopped: the page never freezes on "running".
    cancelled.then(lambda: gr.Timer(active=True), None, [timer], api_name=False, show_progress="hidden")
    root = gr.context.Context.root_block
    if root is not None:  # a reloaded page shows the visitor's newest training job and follows it while it runs
        root.load(on_tick, [job_id], tick_outputs, api_name=False, show_progress="hidden")
        root.load(training_runs, None, [cancel], api_name=False, show_progress="hidden", queue=False)
    return {"status": status_md, "timer": timer, "job_id": job_id, "tick": on_tick}
