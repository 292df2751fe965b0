"""Training under ``accelerate launch`` (one process per GPU): which process does what.

The main process (rank 0) does everything a lone process does: it creates the job, prepares the face crops,
writes the status, validates, checkpoints, merges and registers the likeness. The other processes only join
the training loop: they wait for the crops, then run the same ``train_lora`` on the same job folder, and
``accelerate`` averages their gradients with the main process's. Without a launcher (``WORLD_SIZE`` unset)
nothing here changes anything.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from portrait_studio.config import Settings
from portrait_studio.errors import CancelledError, PortraitStudioError
from portrait_studio.progress import CancelToken

DATASET_WAIT_SECONDS = 3600.0  # face preparation of a large photo set on a slow disk, with room to spare


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_helper_process() -> bool:
    """True in a launched process other than the main one."""
    return world_size() > 1 and process_rank() > 0


def share_job_id(job_id: str | None, settings: Settings) -> str:
    """The main process's job id, on every launched process (a broadcast over the launch's process group)."""
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    from portrait_studio.models.devices import pick_device

    PartialState(cpu=pick_device(settings.device).type == "cpu")  # joins the group the launcher set up
    box = [job_id]
    broadcast_object_list(box)
    if not box[0]:
        raise PortraitStudioError("The main training process did not create a job; see its output above.")
    return str(box[0])


def wait_for_dataset(job_dir: Path, cancel: CancelToken, timeout: float = DATASET_WAIT_SECONDS,
                     poll: float = 0.5) -> Path:
    """Wait until the main process has written the face crops (``dataset/report.json``)."""
    from portrait_studio.likeness.status import read_status

    dataset_dir = job_dir / "dataset"
    deadline = time.monotonic() + timeout
    while not (dataset_dir / "report.json").is_file():
        cancel.raise_if_cancelled()
        state = read_status(job_dir).state
        if state == "cancelled":
            raise CancelledError()
        if state == "failed" or time.monotonic() > deadline:
            raise PortraitStudioError("The main training process stopped before the face crops were ready.")
        time.sleep(poll)
    return dataset_dir
