"""Train Likeness tab: check the photos (with a visual report), then train a LoRA as a background job."""

from __future__ import annotations

import shutil
from pathlib import Path

import gradio as gr
import pandas as pd

from portrait_studio.instant.notes import STORED_NOTE
from portrait_studio.likeness.config import PRESETS, pick_trigger, preset_config
from portrait_studio.services import Services
from ui import gpu_budgets
from ui.common import call_service, load_picture, progress_fn, request_owner
from ui.downloads import missing_notice
from ui.gpu import GPU_QUEUE, on_gpu, zero_gpu
from ui.job_runs import JobLine, tracked
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


def build(services: Services) -> dict[str, gr.Component]:
    if zero_gpu():
        gr.Markdown(ZERO_GPU_NOTE)
    missing_notice(services, ["base"])
    with gr.Row():
        with gr.Column(scale=2):
            photos = gr.File(label=f"Selfies ({services.settings.min_photos}–{services.settings.max_photos} photos)",
                             file_count="multiple", file_types=["image"], elem_id="train-photos")
            check = gr.Button("Check photos", elem_id="train-check")
            check_line = JobLine(services, "check_photos")  # the check's progress, Cancel, and result after reload
            name = gr.Textbox(label="Name of the likeness", placeholder="e.g. Ada", elem_id="train-name")
            preset = gr.Radio(list(PRESETS), value="Balanced", label="Training preset",
                              info="Quick: a first look (UNet only). Balanced: the EasyPhoto recipe (UNet and text "
                                   "encoder). Max: longest")
            steps = gr.Number(value=0, precision=0, label="Steps (0 = from the preset)", elem_id="train-steps")
            keep = gr.Checkbox(label="Keep my photos after training (otherwise they are deleted)", value=False)
            consent = gr.Checkbox(label=CONSENT, value=False, elem_id="train-consent")
            with gr.Row():
                instant = gr.Button("Use now (instant)", variant="primary", elem_id="train-instant")
                start = gr.Button("Train (better, ~20 min on a GPU)", variant="secondary", interactive=not zero_gpu(),
                                  elem_id="train-start")
                cancel = gr.Button("Cancel training", variant="stop", visible=False, elem_id="train-cancel")
            gr.Markdown("**Use now** makes an instant likeness in seconds with a face adapter (IP-Adapter Plus "
                        f"Face), no training. {STORED_NOTE} **Train** learns your face into a LoRA: better in "
                        "every style, but it takes a while.")
        with gr.Column(scale=3):
            sheet = gr.Image(label="Photo check", type="pil", interactive=False, elem_id="train-sheet")
            verdicts = gr.Dataframe(_verdict_rows([]), label="Verdicts", interactive=False, wrap=True)
            check_notes = gr.Markdown(elem_id="train-check-notes")
            job_id = gr.State("")
            status_md = gr.Markdown("No training job yet.", elem_id="train-status")
            plot = gr.LinePlot(x="step", y="similarity", title="Face similarity per checkpoint", height=220,
                               y_lim=[0, 1])
            preview = gr.Image(label="Result", interactive=False)
    timer = gr.Timer(2.0, active=False)

    # Face models run on the GPU too: same queue as every model job.
    @tracked(services, "check_photos")
    @on_gpu(seconds=gpu_budgets.check_photos, task="check_photos")
    def on_check(files, request: gr.Request, progress=gr.Progress()):
        paths = _photo_paths(files)
        if not paths:
            raise gr.Error("Add your selfies first.")
        out_dir = services.output_dir(request_owner(services, request), "photo-check")
        from portrait_studio.faces.pipeline import prepare_faces  # face models and OpenCV: loaded on first use
        from portrait_studio.faces.report import NotEnoughFacesError

        def check_photos() -> object:
            try:
                return prepare_faces(paths, out_dir, services.settings, restore=False, progress=progress_fn(progress))
            except NotEnoughFacesError as exc:  # still worth showing: the sheet says why for each photo
                return exc

        try:
            prepared = call_service(check_photos)
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)  # a preview only: the training job prepares its own copy
        if isinstance(prepared, NotEnoughFacesError):
            return prepared.contact_sheet, _verdict_rows(prepared.entries), f"⚠️ {prepared}"
        note = f"{len(prepared.kept)} of {len(prepared.entries)} photos will be used (backend: {prepared.backend})."
        extra = [f"⚠️ {w}" for w in prepared.warnings]
        return prepared.contact_sheet, _verdict_rows(prepared.entries), "\n\n".join([note, *extra])

    def on_start(files, likeness_name, preset_name, step_count, keep_photos, agreed, request: gr.Request):
        if zero_gpu():
            raise gr.Error(ZERO_GPU_NOTE, print_exception=False)
        paths = _photo_paths(files)
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
        return new_id, _status_markdown(status), _similarity_frame(status), gr.Timer(active=True)

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

    def on_tick(current: str, request: gr.Request):
        owner = request_owner(services, request)
        jobs = services.jobs.list(owner)
        status = next((j for j in jobs if j.job_id == current), jobs[0] if jobs else None)
        if status is None:
            return current, "No training job yet.", _similarity_frame(None), None, gr.Timer(active=False)
        picture = None
        if status.state == "succeeded" and status.slug:
            try:
                record = services.registry.get(owner, status.slug)
                picture = load_picture(record.preview_path)
            except Exception:  # deleted from the Library meanwhile
                picture = None
        return (status.job_id, _status_markdown(status), _similarity_frame(status), picture,
                gr.Timer(active=not status.done))

    def on_cancel(current: str, request: gr.Request):
        owner = request_owner(services, request)
        if not current:  # after a page reload or an app restart: the owner's newest job still running
            current = next((j.job_id for j in services.jobs.list(owner) if not j.done), "")
        if not current:
            raise gr.Error("There is no training job to cancel.")
        status = call_service(services.jobs.cancel, owner, current)
        return _status_markdown(status)

    def training_runs(request: gr.Request):
        """Cancel training is shown only while one of the visitor's training jobs waits or runs."""
        owner = request_owner(services, request)
        return gr.Button(visible=any(not j.done for j in services.jobs.list(owner)))

    check_line.attach([sheet, verdicts, check_notes])
    check_line.on(check.click, on_check, inputs=[photos], outputs=[sheet, verdicts, check_notes],
                  api_name="check_photos", **GPU_QUEUE)
    check_line.on(photos.upload, on_check, inputs=[photos], outputs=[sheet, verdicts, check_notes], api_name=False,
                  **GPU_QUEUE)
    start.click(on_start, [photos, name, preset, steps, keep, consent], [job_id, status_md, plot, timer],
                api_name="train").then(training_runs, None, [cancel], api_name=False, show_progress="hidden")
    instant.click(on_instant, [photos, name, consent], [status_md, preview], api_name="instant_likeness",
                  **GPU_QUEUE)
    timer.tick(on_tick, [job_id], [job_id, status_md, plot, preview, timer], api_name=False, show_progress="hidden")
    timer.tick(training_runs, None, [cancel], api_name=False, show_progress="hidden", queue=False)
    # Then keep polling until the worker has really stopped: the page never freezes on "running".
    cancel.click(on_cancel, [job_id], [status_md], api_name="cancel_training").then(
        lambda: gr.Timer(active=True), None, [timer], api_name=False, show_progress="hidden")
    root = gr.context.Context.root_block
    if root is not None:  # a reloaded page shows the visitor's newest training job and follows it while it runs
        root.load(on_tick, [job_id], [job_id, status_md, plot, preview, timer], api_name=False,
                  show_progress="hidden")
        root.load(training_runs, None, [cancel], api_name=False, show_progress="hidden", queue=False)
    return {"status": status_md, "timer": timer, "job_id": job_id, "tick": on_tick}
