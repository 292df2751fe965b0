from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from portrait_studio.errors import CancelledError, OutOfMemoryError
from portrait_studio.likeness import checkpoints as ck
from portrait_studio.likeness import trainer as trainer_module
from portrait_studio.likeness.failures import DiskFullError
from portrait_studio.likeness.trainer import read_final, train_lora
from portrait_studio.progress import CancelToken
from tests.likeness.helpers import ConstantScorer, tiny_config, write_prepared_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_prepared_dataset(tmp_path_factory.mktemp("likeness") / "dataset", count=3)


@pytest.fixture(scope="module")
def trained(tiny_settings, dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    from portrait_studio.models.manager import ModelManager

    manager = ModelManager(tiny_settings)  # its own cache, to check what training loads into it
    job_dir = tmp_path_factory.mktemp("job")
    reports: list = []
    messages: list[str] = []
    scorer = ConstantScorer(0.0)
    result = train_lora(manager, dataset, job_dir, tiny_config(mask_loss=True), scorer,
                        progress=lambda f, m="": messages.append(m), on_step=reports.append)
    return job_dir, result, reports, messages, scorer, manager


def test_training_writes_checkpoints_validation_and_a_merged_lora(trained) -> None:
    job_dir, result, reports, messages, scorer, _ = trained
    assert [r.step for r in reports] == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(r.loss) for r in reports) and reports[-1].eta_seconds == pytest.approx(0.0)
    assert any("loss" in m and "left" in m for m in messages)
    steps = [c.step for c in ck.complete_checkpoints(job_dir / "checkpoints")]
    assert steps == [3, 6]
    assert scorer.calls == 4  # 2 seeds x 2 checkpoints
    # Nothing scores (no faces): the merge still picks deterministically, latest first.
    assert result.merge_weights == {3: pytest.approx(1 / 3), 6: pytest.approx(2 / 3)}
    assert result.similarity_per_checkpoint == {3: 0.0, 6: 0.0}
    assert result.random_weights and result.warnings
    assert result.preview.is_file() and result.lora_file.is_file()
    keys = list(load_file(str(result.lora_file)))
    assert keys and all(k.startswith("unet.") and (".lora.down." in k or ".lora.up." in k) for k in keys)
    assert read_final(job_dir) == result
    # Only the newest checkpoint keeps optimizer state.
    assert [c.resume_state.is_file() for c in ck.complete_checkpoints(job_dir / "checkpoints")] == [False, True]


def test_the_merged_lora_is_the_weighted_average(trained) -> None:
    job_dir, result, *_ = trained
    a = load_file(str(job_dir / "checkpoints" / "step-000003" / ck.LORA_FILE))
    b = load_file(str(job_dir / "checkpoints" / "step-000006" / ck.LORA_FILE))
    final = load_file(str(result.lora_file))
    key = next(k for k in final if ".lora.up." in k)
    assert torch.allclose(final[key], a[key] / 3 + b[key] * 2 / 3, atol=1e-6)
    assert not torch.equal(a[key], b[key])


def test_the_lora_changes_the_output_at_weight_one_and_not_at_zero(tiny_manager, trained) -> None:
    _, result, *_ = trained

    def render(pipe) -> np.ndarray:
        return pipe("pszkvq person", num_inference_steps=2, height=32, width=32, output_type="np",
                    generator=torch.Generator().manual_seed(0)).images[0]

    with tiny_manager.sd_pipeline() as pipe:
        plain = render(pipe)
        pipe.load_lora_weights(str(result.lora_file.parent), adapter_name="likeness")
        try:
            pipe.set_adapters(["likeness"], [1.0])
            on = render(pipe)
            pipe.set_adapters(["likeness"], [0.0])
            off = render(pipe)
        finally:
            pipe.unload_lora_weights()
    assert np.abs(on - plain).max() > 1e-4
    assert np.abs(off - plain).max() < 1e-6


def test_training_leaves_the_cached_models_alone(trained) -> None:
    manager = trained[-1]
    assert "base:unet" not in manager.cache  # a fresh UNet copy is trained, the cached one is never loaded
    for key in ("base:vae", "base:text_encoder"):
        model = manager.cache.get(key, lambda: None)
        assert not any(p.requires_grad for p in model.parameters())
        assert not getattr(model, "peft_config", None)


def test_cpu_training_is_deterministic_and_resume_is_exact(tiny_manager, dataset: Path, tmp_path: Path) -> None:
    config = tiny_config(steps=6, checkpoint_every=2)
    full = train_lora(tiny_manager, dataset, tmp_path / "full", config, ConstantScorer())
    cancel = CancelToken()

    def stop_after_three(report) -> None:
        if report.step == 3:
            cancel.cancel()

    with pytest.raises(CancelledError):
        train_lora(tiny_manager, dataset, tmp_path / "cut", config, ConstantScorer(), cancel=cancel,
                   on_step=stop_after_three)
    assert [c.step for c in ck.complete_checkpoints(tmp_path / "cut" / "checkpoints")] == [2]
    resumed = train_lora(tiny_manager, dataset, tmp_path / "cut", config, ConstantScorer())
    assert resumed.resumed_from == 2
    a, b = load_file(str(full.lora_file)), load_file(str(resumed.lora_file))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_out_of_memory_ends_with_advice(tiny_manager, dataset: Path, tmp_path: Path, monkeypatch) -> None:
    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trainer_module._Trainer, "_micro_batch_loss", out_of_memory)
    config = tiny_config(rank=128, alpha=64, train_text_encoder=True)
    with pytest.raises(OutOfMemoryError, match="rank 128 -> 64.*text-encoder"):
        train_lora(tiny_manager, dataset, tmp_path, config, ConstantScorer())
    # The process stays usable: the next training runs normally.
    monkeypatch.undo()
    assert train_lora(tiny_manager, dataset, tmp_path / "again", tiny_config(steps=1, checkpoint_every=1),
                      ConstantScorer()).steps == 1


def test_out_of_memory_advice_names_what_to_lower() -> None:
    from portrait_studio.likeness.config import preset_config
    from portrait_studio.likeness.failures import out_of_memory_error

    message = str(out_of_memory_error(preset_config("Max", 5), "cuda"))
    assert "cuda memory" in message and "resolution 512 -> 384" in message and "rank 128 -> 64" in message


def test_disk_full_keeps_the_earlier_checkpoint(tiny_manager, dataset: Path, tmp_path: Path, monkeypatch) -> None:
    real_save = ck.save_lora
    calls: list[Path] = []

    def fills_up(folder: Path, *args, **kwargs):
        calls.append(folder)
        if len(calls) == 2:
            (folder / ck.LORA_FILE).write_bytes(b"half a file")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(folder, *args, **kwargs)

    monkeypatch.setattr(ck, "save_lora", fills_up)
    with pytest.raises(DiskFullError, match="disk is full"):
        train_lora(tiny_manager, dataset, tmp_path, tiny_config(), ConstantScorer())
    left = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert left == ["step-000003"]
    assert load_file(str(tmp_path / "checkpoints" / "step-000003" / ck.LORA_FILE))
    assert not (tmp_path / "final").exists()
    # After space is freed the job resumes from the intact checkpoint.
    monkeypatch.setattr(ck, "save_lora", real_save)
    assert train_lora(tiny_manager, dataset, tmp_path, tiny_config(), ConstantScorer()).resumed_from == 3


def test_text_encoder_lora_is_trained_saved_and_merged(tiny_manager, dataset: Path, tmp_path: Path) -> None:
    from portrait_studio.registry import validate_lora_file

    config = tiny_config(steps=2, checkpoint_every=1, train_text_encoder=True, flip=False)
    result = train_lora(tiny_manager, dataset, tmp_path, config, ConstantScorer(0.5))
    keys = load_file(str(result.lora_file)).keys()
    assert any(k.startswith("text_encoder.") for k in keys) and any(k.startswith("unet.") for k in keys)
    assert result.best_similarity == 0.5 and result.merge_weights == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3)}
    assert validate_lora_file(result.lora_file).rank == 4
