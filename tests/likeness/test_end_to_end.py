"""Real photos -> real face pipeline (dlib) -> training -> real registry, on the tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from portrait_studio.cli import main
from portrait_studio.config import Settings
from portrait_studio.likeness import worker
from portrait_studio.likeness.jobs import JobManager
from portrait_studio.likeness.status import read_status
from portrait_studio.registry import LoraRegistry, loras_applied
from tests.likeness.helpers import photo_variants, tiny_config

dlib_available = pytest.importorskip("portrait_studio.faces.dlib_backend").dlib_available


@pytest.fixture()
def settings(job_settings: Settings) -> Settings:
    return job_settings.replace(face_backend="dlib")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return photo_variants(tmp_path_factory.mktemp("grace"), count=5)


@pytest.mark.skipif(not dlib_available(), reason="dlib face models are not installed")
def test_photos_to_library_entry_whose_lora_changes_the_output(settings: Settings, photos, tiny_manager) -> None:
    jobs = JobManager(settings, autostart=False)
    job_id = jobs.submit("alice", "Grace", photos, tiny_config(steps=4, checkpoint_every=2), consent=True)
    job_dir = settings.jobs_dir / "alice" / job_id
    assert worker.run_job(job_dir) == 0, (job_dir / "log.txt").read_text() if (job_dir / "log.txt").exists() else ""
    status = read_status(job_dir)
    assert status.state == "succeeded" and status.slug and status.random_weights
    assert [p.step for p in status.checkpoints] == [2, 4]
    assert all(0.0 <= s <= 1.0 for p in status.checkpoints for s in p.scores)
    assert not (job_dir / "photos").exists() and not (job_dir / "dataset").exists()  # privacy by default

    record = LoraRegistry(settings.registry_dir).get("alice", status.slug)
    assert record.name == "Grace" and record.trigger == "pszkvq" and record.steps == 4 and record.rank == 4
    assert record.random_weights and record.reference_path is not None and record.preview_path is not None

    def render(pipe) -> np.ndarray:
        return pipe("pszkvq person", num_inference_steps=2, height=32, width=32, output_type="np",
                    generator=torch.Generator().manual_seed(0)).images[0]

    with tiny_manager.sd_pipeline() as pipe:
        plain = render(pipe)
        with loras_applied(pipe, [(record.lora_path, 1.0)]):
            on = render(pipe)
        with loras_applied(pipe, [(record.lora_path, 0.0)]):
            off = render(pipe)
    assert np.abs(on - plain).max() > 1e-4
    assert np.abs(off - plain).max() < 1e-6


@pytest.mark.skipif(not dlib_available(), reason="dlib face models are not installed")
def test_cli_trains_and_prints_the_slug(settings: Settings, photos, capsys) -> None:
    code = main(["train", "--profile", "tiny", "--home", str(settings.home), "--name", "Grace CLI",
                 "--steps", "2", "--resolution", "32", "--validation-steps", "1", "--rank", "4",
                 *map(str, photos)])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0, out
    slug = out[-1]
    assert LoraRegistry(settings.registry_dir).get("local", slug).name == "Grace CLI"
    assert any(line.startswith("step 2/2") for line in out)


def test_cli_bad_input_exits_2_with_one_line(settings: Settings, photos, capsys) -> None:
    code = main(["train", "--profile", "tiny", "--home", str(settings.home), "--name", "X",
                 "--steps", "0", *map(str, photos)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "'steps'" in err[0]
    code = main(["train", "--profile", "tiny", "--home", str(settings.home), "--name", "X", str(photos[0])])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "needs 5–20 photos" in err[0]
