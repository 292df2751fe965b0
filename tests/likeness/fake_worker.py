"""The real training worker with the face pipeline and the registry swapped for small stand-ins.

Run as ``python tests/likeness/fake_worker.py JOB_DIR``. ``FAKE_WORKER_FAULT=oom`` makes the UNet
step raise ``torch.OutOfMemoryError``; ``FAKE_WORKER_FAULT=enospc`` fills the "disk" at the 2nd checkpoint.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

import torch
from PIL import Image, ImageOps

from portrait_studio.likeness import checkpoints, trainer, worker
from tests.likeness.helpers import ConstantScorer


def prepare_dataset(photos, dataset_dir: Path, settings) -> None:
    tmp = dataset_dir.with_name(".tmp-dataset")
    (tmp / "crops").mkdir(parents=True, exist_ok=True)
    (tmp / "masks").mkdir(parents=True, exist_ok=True)
    for index, photo in enumerate(photos):
        crop = ImageOps.fit(Image.open(photo).convert("RGB"), (48, 48))
        crop.save(tmp / "crops" / f"{index:03d}.png")
        Image.new("L", (48, 48), 255).save(tmp / "masks" / f"{index:03d}.png")
    Image.open(tmp / "crops" / "000.png").save(tmp / "reference.png")
    (tmp / "report.json").write_text(json.dumps({"kept": len(photos)}))
    os.replace(tmp, dataset_dir)


def register_result(settings, job, config, result, reference: Path) -> str:
    slug = f"{job['owner']}-{job['job_id']}"
    folder = settings.registry_dir / "fake"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{slug}.json").write_text(json.dumps({
        "name": job["name"], "lora": str(result.lora_file), "steps": result.steps,
        "similarity": result.best_similarity, "reference_exists": reference.is_file(),
        "resumed_from": result.resumed_from,
    }))
    return slug


def install_fault(kind: str) -> None:
    if kind == "oom":
        def out_of_memory(*args, **kwargs):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

        trainer._Trainer._micro_batch_loss = out_of_memory
    elif kind == "enospc":
        real_save = checkpoints.save_lora
        calls = []

        def full_disk(folder, *args, **kwargs):
            calls.append(folder)
            if len(calls) >= 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_save(folder, *args, **kwargs)

        checkpoints.save_lora = full_disk


if __name__ == "__main__":
    torch.set_num_threads(1)
    worker.prepare_dataset = prepare_dataset
    worker.load_scorer = lambda dataset_dir, settings: ConstantScorer(0.0)
    worker.register_result = register_result
    install_fault(os.environ.get("FAKE_WORKER_FAULT", ""))
    raise SystemExit(worker.main(sys.argv[1:]))
