"""``train``: photos -> face crops -> likeness LoRA in the Library, in the foreground."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from portrait_studio.cli import add_command
from portrait_studio.config import Settings
from portrait_studio.errors import CancelledError, PortraitStudioError
from portrait_studio.likeness.config import PRESETS, pick_trigger, preset_config
from portrait_studio.likeness.jobs import JobManager
from portrait_studio.likeness.status import read_status
from portrait_studio.progress import CancelToken

LOCAL_OWNER = "local"  # the registry's single-user owner


def run_train(args: argparse.Namespace, settings: Settings) -> int:
    from portrait_studio.likeness import launch, worker
    from portrait_studio.models.manager import ModelManager
    from portrait_studio.registry import LoraRegistry

    settings.ensure_dirs()
    taken = {record.trigger for record in LoraRegistry(settings.registry_dir).list(LOCAL_OWNER)}
    overrides: dict = {
        "trigger": args.trigger or pick_trigger(f"{LOCAL_OWNER}/{args.name}", taken),
        "class_word": args.class_word,
        "mask_loss": args.mask_loss,
        "seed": args.seed,
    }
    # Without --resolution, train at the base model's own size (512 for SD1.5, 64 for the tiny model).
    overrides["resolution"] = args.resolution or min(512, ModelManager(settings).sd_info().default_size)
    if args.steps is not None:
        overrides["steps"] = args.steps
    if args.validation_steps is not None:
        overrides["validation_steps"] = args.validation_steps
    if args.rank is not None:
        overrides.update(rank=args.rank, alpha=max(1, args.rank // 2))
    config = preset_config(args.preset, len(args.photos), **overrides)
    # Running the command is the consent the app asks for with a checkbox (see the help text).
    jobs = JobManager(settings, autostart=False)
    job_id = None
    if not launch.is_helper_process():  # under `accelerate launch` the main process creates the one job
        job_id = jobs.submit(LOCAL_OWNER, args.name, [Path(p) for p in args.photos], config,
                             consent=True, keep_photos=args.keep_photos)
        print(f"job {job_id}: {config.preset}, {config.steps} steps at {config.resolution}px, "
              f"trigger '{config.trigger}'", flush=True)
    if launch.world_size() > 1:
        job_id = launch.share_job_id(job_id, settings)
    job_dir = settings.jobs_dir / LOCAL_OWNER / str(job_id)
    cancel = CancelToken()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: cancel.cancel())  # stop between two steps
    try:
        code = worker.run_job(job_dir, cancel)
    finally:
        signal.signal(signal.SIGINT, previous)
    if launch.is_helper_process():
        return code
    status = read_status(job_dir)
    if code == 130:
        raise CancelledError("Training cancelled.")
    if code != 0:
        raise PortraitStudioError(status.error or "Training failed; see " + str(job_dir / "log.txt"))
    if status.random_weights:
        print("warning: trained on random-weight test models (tiny profile): the LoRA is not a likeness.")
    print(status.slug)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "train", run_train,
                         "train a likeness LoRA from 5-20 photos of one person and add it to the Library "
                         "(only photos of yourself, or of someone who agreed to it)")
    parser.add_argument("photos", nargs="+", metavar="PHOTO", help="photos of one person (JPEG, PNG, WebP, HEIC)")
    parser.add_argument("--name", required=True, help="name of the likeness in the Library")
    parser.add_argument("--preset", choices=PRESETS, default="Balanced")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: from the preset)")
    parser.add_argument("--resolution", type=int, default=None, help="training size in pixels")
    parser.add_argument("--rank", type=int, default=None, help="LoRA rank (alpha = rank / 2)")
    parser.add_argument("--validation-steps", type=int, default=None,
                        help="sampling steps of each checkpoint's validation images (default 25)")
    parser.add_argument("--trigger", default=None, help="trigger token (default: a unique one from the name)")
    parser.add_argument("--class-word", default="person", help="class word in captions (person, woman, man...)")
    parser.add_argument("--mask-loss", action="store_true", help="weight the loss on the face and hair")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep-photos", action="store_true", help="keep the photos and crops after training")
