"""The training worker process: ``python -m portrait_studio.likeness.worker JOB_DIR``.

Runs one job to its end: face preparation (skipped when already done), training (resuming from the
newest complete checkpoint), registration in the LoRA registry, and deletion of the photos and crops
unless the user kept them. Progress goes to ``status.json``; SIGTERM or a ``CANCEL`` file stops it
between two steps.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from portrait_studio.config import Settings
from portrait_studio.errors import CancelledError, PortraitStudioError
from portrait_studio.likeness import checkpoints as ck
from portrait_studio.likeness.config import TrainingConfig
from portrait_studio.likeness.launch import is_helper_process, process_rank, wait_for_dataset
from portrait_studio.likeness.status import (
    CANCEL_FILE,
    CheckpointPoint,
    read_job,
    read_status,
    update_status,
    write_json_atomic,
)
from portrait_studio.models.lease import DeviceLease, Holder
from portrait_studio.progress import CancelToken

log = logging.getLogger("portrait_studio.likeness.worker")
REGISTERED_FILE = "registered.json"
STATUS_INTERVAL = 0.5  # seconds between status.json writes for plain steps


def settings_to_json(settings: Settings) -> dict[str, Any]:
    data = dataclasses.asdict(settings)
    data["home"] = str(settings.home)
    return data


def settings_from_json(data: dict[str, Any]) -> Settings:
    values = dict(data)
    values["home"] = Path(values["home"])
    return Settings(**values).validate()


# ---- the three collaborators (face pipeline, scorer, registry); tests swap them ----------------------
def prepare_dataset(photos: list[Path], dataset_dir: Path, settings: Settings) -> None:
    from portrait_studio.faces.pipeline import prepare_faces
    from portrait_studio.likeness.photo_check import TRAINING_TOP_K
    from portrait_studio.likeness.photo_rule import PhotoCount

    if dataset_dir.exists():  # a run that died mid-preparation left a partial folder
        shutil.rmtree(dataset_dir)
    # The photos are those the check kept (likeness.photo_rule): same top k, same minimum as the check.
    minimum = PhotoCount.from_settings(settings).minimum
    prepare_faces(photos, dataset_dir, settings, top_k=TRAINING_TOP_K, min_keep=minimum)


def load_scorer(dataset_dir: Path, settings: Settings) -> Any:
    from portrait_studio.faces.similarity import FaceScorer

    return FaceScorer.from_prepared_dir(dataset_dir, settings)


def register_result(settings: Settings, job: dict[str, Any], config: TrainingConfig, result: Any,
                    reference: Path) -> str:
    import numpy as np

    from portrait_studio.registry import LoraRegistry

    # The identity centre the checkpoints were scored against: best-of-N scores with the same one.
    dataset_dir = Path(reference).parent
    identity = None
    backend = ""
    try:
        identity = np.load(dataset_dir / "reference_embedding.npy", allow_pickle=False)
        backend = str(json.loads((dataset_dir / "report.json").read_text()).get("backend", ""))
    except (OSError, ValueError):
        identity = None
    record = LoraRegistry(settings.registry_dir).add_trained(
        job["owner"], job["name"], result.lora_file,
        trigger=config.trigger, class_word=config.class_word, base_model=result.base_model, rank=config.rank,
        steps=result.steps, similarity=result.best_similarity, preview=result.preview, reference=reference,
        extra={
            "job_id": job["job_id"],
            "preset": config.preset,
            "similarity_per_checkpoint": {str(k): v for k, v in result.similarity_per_checkpoint.items()},
            "merge_weights": {str(k): v for k, v in result.merge_weights.items()},
            "random_weights": result.random_weights,
            "face_backend": backend,
        },
        random_weights=result.random_weights,
        identity=identity if backend else None,
    )
    return str(record.slug)


# ---- the job ------------------------------------------------------------------------------------------
def run_job(job_dir: Path, cancel: CancelToken | None = None) -> int:
    """Run the job in ``job_dir`` to a final state; return the process exit code."""
    job_dir = Path(job_dir)
    cancel = cancel or CancelToken()
    if is_helper_process():  # under `accelerate launch`: only the main process runs the job
        return _help_main_process(job_dir, cancel)
    job = read_job(job_dir)
    prior = read_status(job_dir)
    update_status(job_dir, state="running", pid=os.getpid(), started=prior.started or time.time(),
                  attempts=max(prior.attempts, 1), message="preparing", error="")
    try:
        # The device is the job's for its whole life (face preparation, training, validation); while an app
        # request or a CLI command holds it, the job waits and says for whom.
        settings = settings_from_json(job["settings"])
        lease = DeviceLease.for_settings(settings)
        # On a public deployment other visitors read the wait message: no likeness name in it there.
        name = "" if settings.public else str(job.get("name", ""))
        holder = Holder("training", name, job_dir=str(job_dir))
        with lease.hold(holder, on_wait=lambda message: update_status(job_dir, message=message), cancel=cancel):
            slug = _run(job_dir, job, cancel)
    except CancelledError:
        _end(job_dir, job, state="cancelled", message="Cancelled. Finished checkpoints were deleted with the job data.")
        return 130
    except PortraitStudioError as exc:
        log.error("job failed: %s", exc)
        _end(job_dir, job, state="failed", message="Training failed.", error=str(exc))
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug: keep the traceback in the log, tell the user plainly
        traceback.print_exc()
        _end(job_dir, job, state="failed", message="Training failed.",
             error=f"Internal error ({type(exc).__name__}: {exc}). The details are in the job log.")
        return 1
    _end(job_dir, job, state="succeeded", message="Done: the likeness is in your Library.", slug=slug)
    return 0


def _run(job_dir: Path, job: dict[str, Any], cancel: CancelToken) -> str:
    from portrait_studio.likeness.trainer import CheckpointReport, StepReport, train_lora
    from portrait_studio.models.process_cache import process_manager

    settings = settings_from_json(job["settings"])
    config = TrainingConfig.from_dict(job["config"])
    registered = job_dir / REGISTERED_FILE
    if registered.is_file():  # crashed after registering: do not add the LoRA twice
        return str(json.loads(registered.read_text())["slug"])
    dataset_dir = job_dir / "dataset"
    if not (dataset_dir / "report.json").is_file():
        _check_cancel(job_dir, cancel)
        update_status(job_dir, message="finding and cropping faces")
        photos = sorted(p for p in (job_dir / "photos").iterdir() if p.is_file())
        prepare_dataset(photos, dataset_dir, settings)
    _check_cancel(job_dir, cancel)
    scorer = load_scorer(dataset_dir, settings)
    last_write = [0.0]

    def on_step(report: StepReport) -> None:
        _check_cancel(job_dir, cancel)
        now = time.monotonic()
        if now - last_write[0] >= STATUS_INTERVAL or report.step == report.max_steps:
            last_write[0] = now
            update_status(job_dir, step=report.step, max_steps=report.max_steps, loss=report.loss,
                          eta_seconds=report.eta_seconds, message=f"training, step {report.step}/{report.max_steps}")
            say_line(f"step {report.step}/{report.max_steps} loss {report.loss:.4f}")

    def on_checkpoint(report: CheckpointReport) -> None:
        points = read_status(job_dir).checkpoints
        points = [p for p in points if p.step != report.step]
        points.append(CheckpointPoint(report.step, report.best, report.scores))
        update_status(job_dir, step=report.step, checkpoints=sorted(points, key=lambda p: p.step),
                      message=f"checkpoint at step {report.step}: likeness {report.best:.2f}")
        say_line(f"checkpoint {report.step} similarity {report.best:.3f}")

    start = ck.latest_resumable(job_dir / "checkpoints")
    if start is not None:
        update_status(job_dir, resumed_from=start.step, step=start.step, message=f"resuming from step {start.step}")
        say_line(f"resuming from checkpoint at step {start.step}")
    manager = process_manager(settings)  # the cache face preparation used: unload_all frees both
    result = train_lora(manager, dataset_dir, job_dir, config, scorer, cancel=cancel,
                        role=job.get("role", "base"), on_step=on_step, on_checkpoint=on_checkpoint)
    update_status(job_dir, step=result.steps, max_steps=result.steps, random_weights=result.random_weights,
                  message="adding the likeness to your Library")
    slug = register_result(settings, job, config, result, _reference(dataset_dir))
    write_json_atomic(registered, {"slug": slug})
    _free_checkpoint_weights(job_dir)
    return slug


def say_line(text: str) -> None:
    """Print one progress line with a single write: the processes of a data-parallel run share one stdout,
    and ``print`` writes the text and its newline separately when output is unbuffered, so two processes'
    lines ran together ("...loss 1.2126step 1/2 loss 1.1287"). One write of a short line to a pipe is atomic."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _help_main_process(job_dir: Path, cancel: CancelToken) -> int:
    """A launched helper process: join the main process's training loop on the same job, nothing else."""
    from portrait_studio.likeness.trainer import train_lora
    from portrait_studio.models.manager import ModelManager

    job = read_job(job_dir)
    settings = settings_from_json(job["settings"])
    config = TrainingConfig.from_dict(job["config"])
    rank = process_rank()
    try:
        dataset_dir = wait_for_dataset(job_dir, cancel)
        train_lora(ModelManager(settings), dataset_dir, job_dir, config, load_scorer(dataset_dir, settings),
                   cancel=cancel, role=job.get("role", "base"),
                   on_step=lambda r: say_line(f"[process {rank}] step {r.step}/{r.max_steps} loss {r.loss:.4f}"))
    except CancelledError:
        return 130
    except PortraitStudioError as exc:
        log.error("helper process %d: %s", rank, exc)
        return 1
    return 0


def _reference(dataset_dir: Path) -> Path:
    return dataset_dir / "reference.png"


def _check_cancel(job_dir: Path, cancel: CancelToken) -> None:
    if (job_dir / CANCEL_FILE).exists():
        cancel.cancel()
    cancel.raise_if_cancelled()


def _free_checkpoint_weights(job_dir: Path) -> None:
    """After registering, the per-checkpoint LoRAs and optimizer states only take disk space."""
    for ckpt in ck.complete_checkpoints(job_dir / "checkpoints"):
        ckpt.resume_state.unlink(missing_ok=True)
        ckpt.lora_file.unlink(missing_ok=True)


def delete_private_data(job_dir: Path) -> None:
    """Privacy: the uploaded photos and the face crops/masks made from them."""
    for name in ("photos", "dataset"):
        shutil.rmtree(job_dir / name, ignore_errors=True)


def _end(job_dir: Path, job: dict[str, Any], *, state: str, message: str, error: str = "",
         slug: str | None = None) -> None:
    if not job.get("keep_photos"):
        delete_private_data(job_dir)
    if state == "cancelled":
        shutil.rmtree(job_dir / "checkpoints", ignore_errors=True)
    update_status(job_dir, state=state, message=message, error=error, slug=slug, finished=time.time(),
                  eta_seconds=None, pid=None)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m portrait_studio.likeness.worker JOB_DIR", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    cancel = CancelToken()
    signal.signal(signal.SIGTERM, lambda signum, frame: cancel.cancel())
    return run_job(Path(args[0]), cancel)


if __name__ == "__main__":
    raise SystemExit(main())
