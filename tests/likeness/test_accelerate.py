"""Training through accelerate: the loop uses the Accelerator, and two processes train data-parallel.

The two-process run uses ``torch.distributed.run`` on the CPU (gloo), which is what ``accelerate launch
--multi_gpu`` starts underneath: the same command, no code change.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from portrait_studio.likeness import setup as likeness_setup
from portrait_studio.likeness.trainer import train_lora
from portrait_studio.registry import LoraRegistry
from tests.conftest import REPO
from tests.likeness.helpers import ConstantScorer, photo_variants, tiny_config, write_prepared_dataset

dlib_available = pytest.importorskip("portrait_studio.faces.dlib_backend").dlib_available


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_prepared_dataset(tmp_path_factory.mktemp("accelerate") / "dataset", count=3)


def test_the_loop_runs_through_the_accelerator(tiny_manager, dataset: Path, tmp_path: Path, monkeypatch) -> None:
    made = []
    real = likeness_setup.make_accelerator

    def spy(config, device, precision):
        accelerator = real(config, device, precision)
        calls = {"backward": 0, "prepare": [], "steps": 0}
        backward, prepare = accelerator.backward, accelerator.prepare

        def counted_backward(loss, **kwargs):
            calls["backward"] += 1
            calls["steps"] += int(accelerator.sync_gradients)
            return backward(loss, **kwargs)

        def recorded_prepare(*objects):
            calls["prepare"] = [type(o).__name__ for o in objects]
            return prepare(*objects)

        accelerator.backward, accelerator.prepare = counted_backward, recorded_prepare
        made.append((accelerator, calls))
        return accelerator

    monkeypatch.setattr("portrait_studio.likeness.trainer.make_accelerator", spy)
    config = tiny_config(steps=3, grad_accum=2, checkpoint_every=3)
    result = train_lora(tiny_manager, dataset, tmp_path / "job", config, ConstantScorer())
    assert result.lora_file.is_file()
    (accelerator, calls), = made
    assert accelerator.gradient_accumulation_steps == 2
    assert calls["prepare"] == ["UNet2DConditionModel", "AdamW"]
    assert calls["backward"] == 6 and calls["steps"] == 3  # 3 optimizer steps of 2 micro-batches, synced once each


@pytest.mark.skipif(not dlib_available(), reason="dlib face models are not installed")
def test_accelerate_launch_trains_one_job_data_parallel(job_settings, tmp_path: Path) -> None:
    """``python -m portrait_studio train`` under a two-process launcher: one job, two training processes."""
    photos = photo_variants(tmp_path / "photos", count=5)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PORTRAIT_STUDIO_FACE_BACKEND": "dlib"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "portrait_studio", "train", "--profile", "tiny", "--home", str(job_settings.home),
               "--name", "Grace DP", "--steps", "2", "--resolution", "32", "--validation-steps", "1",
               "--rank", "4", *map(str, photos)]
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    jobs = list((job_settings.jobs_dir / "local").iterdir())
    assert len(jobs) == 1  # the main process created the job; the helper joined it
    records = LoraRegistry(job_settings.registry_dir).list("local")
    assert [r.name for r in records] == ["Grace DP"]  # registered once
    main_loss = re.search(r"^step 1/2 loss (\S+)", run.stdout, re.MULTILINE)
    helper_loss = re.search(r"^\[process 1\] step 1/2 loss (\S+)", run.stdout, re.MULTILINE)
    assert main_loss and helper_loss, run.stdout[-3000:]
    assert main_loss[1] != helper_loss[1]  # each process trained on its own draws (gradients are averaged)
