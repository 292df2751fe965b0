"""The backend as one object the UI (or any other front end) holds: settings, model manager, outputs."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from portrait_studio.config import Settings
from portrait_studio.errors import MissingWeightsError
from portrait_studio.likeness.jobs import JobManager
from portrait_studio.models.lease import DeviceLease
from portrait_studio.models.manager import ModelManager
from portrait_studio.models.process_cache import process_manager
from portrait_studio.registry import LoraRecord, LoraRegistry, base_shapes_from_model_dir
from portrait_studio.visitor_jobs import VisitorJobs

log = logging.getLogger(__name__)
LOCAL_OWNER = "local"
JOB_HISTORY_DIR = "job-history"  # <home>/job-history/<owner>/<job>.json (portrait_studio.visitor_jobs)
_OWNER_RE = re.compile(r"^[a-z0-9_-]{1,64}$")


def owner_id(raw: str | None) -> str:
    """A filesystem-safe owner id: 'local' for None, else the value if safe, else a hash of it."""
    if not raw:
        return LOCAL_OWNER
    if _OWNER_RE.match(raw):
        return raw
    return "u-" + hashlib.sha256(raw.encode()).hexdigest()[:24]


@dataclass
class Services:
    settings: Settings
    manager: ModelManager
    registry: LoraRegistry
    jobs: JobManager
    lease: DeviceLease | None = None  # the device lease model handlers take (ui/gpu.py)
    started: float = field(default_factory=time.time)
    visitor_jobs: VisitorJobs = field(default_factory=lambda: VisitorJobs(None))  # model jobs per visitor

    @classmethod
    def create(cls, settings: Settings, *, resume_jobs: bool = True) -> Services:
        """Build the backend without importing torch or loading a model (both happen on first use).

        Training jobs left unfinished by a crash are queued again here, unless ``resume_jobs`` is False:
        the app passes False and calls :meth:`resume_jobs_in_background` once its server is up.
        """
        settings.ensure_dirs()
        manager = process_manager(settings)  # face models, GFPGAN and AnimeGAN share its cache
        # Training needs the whole device: the cache lets go of every unlocked model first.
        jobs = JobManager(settings, before_job=manager.unload_all)
        if resume_jobs:
            jobs.resume_incomplete()
        lease = DeviceLease.for_settings(settings)  # decides (and picks the device) on first use
        # A request that ends while a training job waits for the device leaves the card empty for it.
        lease.before_training_takes_over.append(manager.unload_all)
        return cls(settings=settings, manager=manager, registry=LoraRegistry(settings.registry_dir), jobs=jobs,
                   lease=lease, visitor_jobs=VisitorJobs(
                       settings.home / JOB_HISTORY_DIR,
                       max_age=settings.cleanup_after_hours * 3600 if settings.public else None))

    def resume_jobs_in_background(self) -> threading.Thread:
        """Queue unfinished training jobs again in a thread of its own, so old jobs never delay the first page."""

        def resume() -> None:
            try:
                resumed = self.jobs.resume_incomplete()
            except Exception:  # a damaged job folder must not take the app down; the log says which
                log.exception("could not resume unfinished training jobs")
                return
            if resumed:
                log.info("resumed %d unfinished training job(s): %s", len(resumed), ", ".join(resumed))

        thread = threading.Thread(target=resume, name="resume-training-jobs", daemon=True)
        thread.start()
        return thread

    def import_lora(self, owner: str, path: Path, name: str | None = None) -> LoraRecord:
        """Import a user's LoRA, checked against the base model's module shapes when its weights are here."""
        shapes = None
        if self.manager.locator.is_available("base"):
            # Shapes from the config files alone: no weights are read for this check.
            shapes = base_shapes_from_model_dir(self.manager.locator.path("base"))
        return self.registry.import_file(owner_id(owner), path, name=name, base_shapes=shapes)

    def output_dir(self, owner: str, kind: str) -> Path:
        """A fresh, unguessable directory for one request's outputs, inside the owner's namespace."""
        # The full uuid4 (122 random bits): the folder name alone never lets anyone guess another's.
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex}"
        folder = self.settings.outputs_dir / owner_id(owner) / kind / stamp
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def missing_weights(self, roles: list[str]) -> list[MissingWeightsError]:
        return self.manager.check_available(roles)
