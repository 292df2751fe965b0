"""Training through accelerate: the loop uses the Accelerator, and two processes train data-parallel.

The two-process run uses ``torch.distributed.run`` on the CPU (gloo), which is what ``accelerate launch
--multi_gpu`` starts underneath: the same trainer, no code change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from portrait_studio.likeness import setup as likeness_setup
from portrait_studio.likeness.trainer import train_lora
from tests.conftest import REPO
from tests.likeness.helpers import ConstantScorer, tiny_config, write_prepared_dataset


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


RANK_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from portrait_studio.config import Settings
    from portrait_studio.models.manager import ModelManager
    from portrait_studio.likeness.trainer import train_lora
    from tests.likeness.helpers import ConstantScorer, tiny_config

    home, dataset, job = (Path(p) for p in sys.argv[1:4])
    manager = ModelManager(Settings(profile="tiny", home=home, offline=True))
    seen = []
    config = tiny_config(steps=2, checkpoint_every=2)
    result = train_lora(manager, dataset, job, config, ConstantScorer(), on_step=lambda r: seen.append(r.loss))
    rank = int(os.environ["RANK"])
    Path(job, f"rank{rank}.json").write_text(json.dumps({"losses": seen, "lora": str(result.lora_file)}))
""")


def test_two_processes_train_data_parallel_with_no_code_change(tiny_settings, dataset: Path, tmp_path: Path) -> None:
    from portrait_studio.models.locator import ModelLocator

    ModelLocator(tiny_settings).path("base")
    home = tmp_path / "home"
    home.mkdir()
    (home / "tiny-models").symlink_to(tiny_settings.tiny_dir, target_is_directory=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    run = subprocess.run([*command, str(script), str(home), str(dataset), str(tmp_path / "job")], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    ranks = [json.loads((tmp_path / "job" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["losses"] != ranks[1]["losses"]  # each process drew its own micro-batches...
    assert ranks[0]["lora"] == ranks[1]["lora"]  # ...into one job, merged once by the main process

    single = train_lora(_manager(home), dataset, tmp_path / "single", tiny_config(steps=2, checkpoint_every=2),
                        ConstantScorer())
    parallel, alone = load_file(ranks[0]["lora"]), load_file(str(single.lora_file))
    assert parallel.keys() == alone.keys()
    # Averaged gradients of two different batches: not what one process alone computes.
    assert any(not torch.equal(parallel[k], alone[k]) for k in parallel)


def _manager(home: Path):
    from portrait_studio.config import Settings
    from portrait_studio.models.manager import ModelManager

    return ModelManager(Settings(profile="tiny", home=home, offline=True))
