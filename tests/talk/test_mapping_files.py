"""The SadTalker mapping files as published (training checkpoints) and every way one can fail to load."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from portrait_studio.cli import main as cli_main
from portrait_studio.config import Settings
from portrait_studio.errors import BadWeightsFileError
from portrait_studio.models.manager import ModelManager
from portrait_studio.talk.checkpoint import MAPPING_FILES, checkpoint_name
from portrait_studio.talk.engine import ROLE, talk_nets

CROP_MAPPING = MAPPING_FILES["crop"]


def test_tiny_mapping_files_are_full_training_checkpoints(tiny_manager: ModelManager) -> None:
    folder = tiny_manager.locator.path(ROLE)
    for filename in MAPPING_FILES.values():
        checkpoint = torch.load(folder / filename, map_location="cpu", weights_only=True)
        assert set(checkpoint) == {"mapping", "discriminator", "optimizer_mapping", "optimizer_discriminator", "epoch"}
        assert isinstance(checkpoint["epoch"], int)
        for name in ("optimizer_mapping", "optimizer_discriminator"):
            optimizer = checkpoint[name]
            assert set(optimizer) == {"state", "param_groups"}
            first = optimizer["state"][0]
            assert {"step", "exp_avg", "exp_avg_sq"} <= set(first)
            assert optimizer["param_groups"][0]["betas"] == (0.5, 0.999)
        # One Adam moment per floating tensor of the mapping net, shaped like it.
        mapping_shapes = [tuple(t.shape) for t in checkpoint["mapping"].values() if t.is_floating_point()]
        moments = checkpoint["optimizer_mapping"]["state"]
        assert [tuple(moments[i]["exp_avg"].shape) for i in range(len(mapping_shapes))] == mapping_shapes


def _copy_role(tiny_manager: ModelManager, tmp_path: Path) -> Path:
    copy = tmp_path / "sadtalker"
    shutil.copytree(tiny_manager.locator.path(ROLE), copy)
    return copy


def _manager_on(settings: Settings, folder: Path, tmp_path: Path) -> ModelManager:
    # A home of its own: the mapping's safetensors copy must come from this folder's file.
    return ModelManager(settings.replace(home=tmp_path / "home", model_overrides={ROLE: str(folder)}))


def _refused_checkpoint(path: Path) -> None:
    """A training checkpoint that also pickles its argparse options: ``weights_only`` refuses that object."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    checkpoint["args"] = argparse.Namespace(lr=2e-4, batch_size=32)
    torch.save(checkpoint, path)


def _expect_bad_file(manager: ModelManager, filename: str, problem: str) -> BadWeightsFileError:
    with pytest.raises(BadWeightsFileError) as err:
        with talk_nets(manager, 256, "crop"):
            pass
    message = str(err.value)
    assert filename in message and problem in message, message
    assert "python -m portrait_studio download --roles sadtalker" in message
    assert len(message.splitlines()) == 1
    return err.value


def test_a_mapping_file_weights_only_refuses_is_a_typed_error(tiny_settings, tiny_manager, tmp_path) -> None:
    folder = _copy_role(tiny_manager, tmp_path)
    _refused_checkpoint(folder / CROP_MAPPING)
    error = _expect_bad_file(_manager_on(tiny_settings, folder, tmp_path), CROP_MAPPING, "weights_only=True) refused")
    assert "argparse" in str(error) or "Namespace" in str(error)
    assert not list((tmp_path / "home").rglob("*.safetensors"))  # no half-written conversion


def test_a_truncated_mapping_file_is_a_typed_error(tiny_settings, tiny_manager, tmp_path) -> None:
    folder = _copy_role(tiny_manager, tmp_path)
    data = (folder / CROP_MAPPING).read_bytes()
    (folder / CROP_MAPPING).write_bytes(data[: len(data) // 2])
    _expect_bad_file(_manager_on(tiny_settings, folder, tmp_path), CROP_MAPPING, "truncated or damaged")


def test_a_mapping_file_without_its_mapping_entry_is_a_typed_error(tiny_settings, tiny_manager, tmp_path) -> None:
    folder = _copy_role(tiny_manager, tmp_path)
    checkpoint = torch.load(folder / CROP_MAPPING, map_location="cpu", weights_only=True)
    del checkpoint["mapping"]
    torch.save(checkpoint, folder / CROP_MAPPING)
    _expect_bad_file(_manager_on(tiny_settings, folder, tmp_path), CROP_MAPPING, "no 'mapping' state dict")


def test_a_wrong_shaped_mapping_is_a_typed_error(tiny_settings, tiny_manager, tmp_path) -> None:
    folder = _copy_role(tiny_manager, tmp_path)
    checkpoint = torch.load(folder / CROP_MAPPING, map_location="cpu", weights_only=True)
    checkpoint["mapping"]["fc_t.weight"] = torch.zeros(5, 2)
    torch.save(checkpoint, folder / CROP_MAPPING)
    _expect_bad_file(_manager_on(tiny_settings, folder, tmp_path), CROP_MAPPING, "wrong-shaped")


def test_a_truncated_renderer_checkpoint_is_a_typed_error(tiny_settings, tiny_manager, tmp_path) -> None:
    folder = _copy_role(tiny_manager, tmp_path)
    target = folder / checkpoint_name(256)
    target.write_bytes(target.read_bytes()[:4096])
    _expect_bad_file(_manager_on(tiny_settings, folder, tmp_path), checkpoint_name(256), "truncated or damaged")


def test_talk_cli_on_a_refused_mapping_file_exits_2_with_one_line(
    tiny_settings: Settings, tiny_manager, grace_hopper: Image.Image, speech_wav: Path, tmp_path: Path, capsys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = _copy_role(tiny_manager, tmp_path)
    _refused_checkpoint(folder / CROP_MAPPING)
    monkeypatch.setenv("PORTRAIT_STUDIO_MODEL_SADTALKER", str(folder))
    portrait = tmp_path / "grace.png"
    grace_hopper.save(portrait)
    code = cli_main(["talk", "--portrait", str(portrait), "--audio", str(speech_wav), "--out",
                     str(tmp_path / "o.mp4"), "--home", str(tmp_path / "home"), "--profile", "tiny"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and CROP_MAPPING in err and "refused" in err, err
    assert not (tmp_path / "o.mp4").exists()
