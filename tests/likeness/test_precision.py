"""Training precision: bf16 only where the card has it natively, and validation in one dtype for the
UNet, the VAE and the text encoder under every mixed-precision setting (on a CPU, with the cache in bf16
standing in for a GPU's fp16 cache)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from portrait_studio.likeness import trainer as trainer_module
from portrait_studio.likeness.setup import pick_precision
from portrait_studio.likeness.trainer import train_lora
from portrait_studio.models.devices import native_bf16
from tests.likeness.helpers import ConstantScorer, tiny_config, write_prepared_dataset

CUDA = torch.device("cuda")


@pytest.mark.parametrize(("major", "rocm", "expected"), [
    (6, False, False),  # Pascal
    (7, False, False),  # Volta/Turing (RTX 20xx): emulated bf16 only
    (8, False, True),  # Ampere
    (9, False, True),  # Hopper
    (None, False, False),  # no CUDA device
    (None, True, True),  # ROCm
])
def test_native_bf16_from_capability(major, rocm, expected) -> None:
    assert native_bf16(major, rocm=rocm) is expected


@pytest.mark.parametrize(("mode", "native", "weight", "scaler"), [
    ("auto", True, torch.bfloat16, False),
    ("auto", False, torch.float16, True),
    ("bf16", False, torch.float16, True),  # asked for, but only emulated: fp16
    ("bf16", True, torch.bfloat16, False),
    ("fp16", True, torch.float16, True),
    ("no", True, torch.float32, False),
])
def test_precision_on_cuda_from_fake_capability(mode, native, weight, scaler) -> None:
    precision = pick_precision(tiny_config(mixed_precision=mode), CUDA, bf16_native=native)
    assert (precision.weight_dtype, precision.use_grad_scaler) == (weight, scaler)
    assert pick_precision(tiny_config(mixed_precision=mode), torch.device("cpu")).weight_dtype == torch.float32


def test_an_rtx_20xx_that_emulates_bf16_trains_in_fp16(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.cuda.is_bf16_supported() says yes on compute capability 7.5 (emulation): not a reason for bf16."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(major=7, minor=5))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    monkeypatch.setattr(torch.version, "hip", None)
    precision = pick_precision(tiny_config(mixed_precision="auto"), CUDA)
    assert precision.weight_dtype == torch.float16 and precision.use_grad_scaler


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_prepared_dataset(tmp_path_factory.mktemp("precision") / "dataset", count=2)


@pytest.mark.filterwarnings("ignore:torch.cuda.amp.GradScaler is enabled")  # fp16's scaler, simulated on a CPU
@pytest.mark.parametrize("mode", ["no", "fp16", "bf16", "bf16 on cpu"])
def test_validation_runs_in_one_dtype_and_leaves_the_cache_as_it_was(
    mode: str, tiny_settings, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache holds bf16 components (a GPU's fp16 cache, on a CPU). Modes no/fp16/bf16 get the precision
    a CUDA card with native bf16 would use, run on the CPU; "bf16 on cpu" is the CPU's own choice (fp32)."""
    from portrait_studio.models.manager import ModelManager

    if mode != "bf16 on cpu":
        on_a_card = pick_precision(tiny_config(mixed_precision=mode), CUDA, bf16_native=True)
        monkeypatch.setattr(trainer_module, "pick_precision", lambda config, device: on_a_card)
    config = tiny_config(mixed_precision=mode.split()[0], steps=1, checkpoint_every=1, validation_seeds=(1,))
    manager = ModelManager(tiny_settings.replace(dtype="bfloat16"))
    reached: list[int] = []
    train_lora(manager, dataset, tmp_path / "job", config, ConstantScorer(0.0),
               on_checkpoint=lambda report: reached.append(report.step))
    assert reached == [1]  # the first validation rendered
    for name in ("vae", "text_encoder"):
        module = manager.cache.get(f"base:{name}", lambda: None)
        assert {p.dtype for p in module.parameters()} == {torch.bfloat16}, name
