"""A role's folder is checked against its exact file list; an incomplete snapshot is named and repaired."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import constants

from portrait_studio.config import settings_from_env
from portrait_studio.errors import IncompleteWeightsError, MissingWeightsError
from portrait_studio.models import files as role_files
from portrait_studio.models.locator import ModelLocator, check_free_space, git_blob_id
from portrait_studio.models.roles import ROLES
from portrait_studio.models.tiny import build_sd15
from tests.foundation.hf_cache import FAKE_COMMIT, write_snapshot

BASE_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
UNET_FILE = "unet/diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def sd15_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sd15")
    build_sd15(folder)
    return folder


@pytest.fixture()
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HF cache the in-process locator uses (the constant is read at call time)."""
    hf_home = tmp_path / "hf"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    # The faked downloads are checked against the published sizes (base: 3.4 GB); the test machine's own
    # free space must not decide them (a CI machine with 2.3 GB free failed this test).
    real_usage = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real_usage(path)._replace(free=10**12))
    return hf_home


def _copy_build(source: Path):
    return lambda folder: shutil.copytree(source, folder, dirs_exist_ok=True)


def _locator(tmp_path: Path, offline: bool = True, **env: str) -> ModelLocator:
    settings = settings_from_env(dict(env), home=tmp_path / "home", offline=offline, device="cpu")
    return ModelLocator(settings)


def test_a_complete_snapshot_is_used_and_its_commit_is_the_resolved_revision(tmp_path, hub_cache, sd15_build):
    snapshot = write_snapshot(hub_cache, BASE_REPO, _copy_build(sd15_build))
    path = _locator(tmp_path).path("base")
    assert path == snapshot
    assert role_files.resolved_revision(path) == FAKE_COMMIT


def test_a_missing_file_is_named_with_the_command(tmp_path, hub_cache, sd15_build):
    snapshot = write_snapshot(hub_cache, BASE_REPO, _copy_build(sd15_build))
    (snapshot / UNET_FILE).unlink()
    with pytest.raises(IncompleteWeightsError) as err:
        _locator(tmp_path).path("base")
    assert str(err.value) == (
        f"base: {UNET_FILE} missing — run `python -m portrait_studio download --roles base`"
    )
    assert not _locator(tmp_path).is_available("base")


def test_a_dangling_cache_symlink_counts_as_missing(tmp_path, hub_cache, sd15_build):
    snapshot = write_snapshot(hub_cache, BASE_REPO, _copy_build(sd15_build))
    (snapshot / "vae" / "config.json").resolve().unlink()  # the blob went, the link stayed
    with pytest.raises(IncompleteWeightsError, match="vae/config.json missing"):
        _locator(tmp_path).path("base")


def test_download_repairs_an_incomplete_snapshot_with_the_exact_file_list(tmp_path, hub_cache, sd15_build, monkeypatch):
    snapshot = write_snapshot(hub_cache, BASE_REPO, _copy_build(sd15_build))
    (snapshot / UNET_FILE).unlink()
    real = huggingface_hub.snapshot_download
    calls: list[dict] = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append(kwargs)
        if kwargs.get("local_files_only"):
            return real(repo_id, **kwargs)
        for name in kwargs["allow_patterns"]:  # what the network fetch would write: the files not yet there
            if not (snapshot / name).is_file() and (sd15_build / name).is_file():
                shutil.copy(sd15_build / name, snapshot / name)
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    path = _locator(tmp_path, offline=False).path("base", download=True)
    assert (path / UNET_FILE).is_file()
    network = [c for c in calls if not c["local_files_only"]]
    assert len(network) == 1
    patterns = network[0]["allow_patterns"]
    assert UNET_FILE in patterns and not any("*" in p for p in patterns)
    assert not any(".fp16." in p for p in patterns)  # the CPU runs fp32


def test_fp16_devices_fetch_only_the_fp16_variants_the_repo_publishes():
    base, motion = ROLES["base"], ROLES["motion_adapter"]
    fp16 = role_files.fetched_files(base, fp16=True)
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in fp16
    assert UNET_FILE not in fp16
    assert role_files.download_mb(base, fp16=True) < role_files.download_mb(base) / 1.9
    canny = role_files.fetched_files(ROLES["controlnet_canny"], fp16=True)
    assert canny == ["config.json", "diffusion_pytorch_model.fp16.safetensors"]
    # Only the config of the v1-5-2 adapter for Fast mode.
    assert role_files.fetched_files(motion, config_only=True) == ["config.json"]
    assert role_files.download_mb(motion, config_only=True) < 1


def test_a_complete_fp32_snapshot_serves_an_fp16_device(tmp_path, hub_cache, sd15_build, monkeypatch):
    snapshot = write_snapshot(hub_cache, BASE_REPO, _copy_build(sd15_build))
    monkeypatch.setattr(ModelLocator, "wants_fp16", lambda self, role: True)
    assert _locator(tmp_path).path("base") == snapshot


def test_revision_env_pins_the_commit(tmp_path, hub_cache, sd15_build):
    other = "a" * 40
    write_snapshot(hub_cache, BASE_REPO, _copy_build(sd15_build))
    with pytest.raises(MissingWeightsError, match=f"@{other}"):
        _locator(tmp_path, PORTRAIT_STUDIO_REVISION_BASE=other).path("base")
    path = _locator(tmp_path, PORTRAIT_STUDIO_REVISION_BASE=FAKE_COMMIT).path("base")
    assert role_files.resolved_revision(path) == FAKE_COMMIT


def test_free_disk_check_names_sizes_and_where(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"needs 4\.27 GB but only 1\.00 GB are free"):
        check_free_space("base", tmp_path, 4270, free_bytes=1_000_000_000)
    check_free_space("base", tmp_path, 100, free_bytes=1_000_000_000)


def test_git_blob_id_is_what_git_computes(tmp_path):
    sample = tmp_path / "weights.pt"
    sample.write_bytes(bytes(range(256)) * 50)
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    expected = subprocess.run(["git", "hash-object", str(sample)], capture_output=True, text=True).stdout.strip()
    assert git_blob_id(sample) == expected


def test_a_release_file_with_the_wrong_digest_is_not_kept(tmp_path):
    from portrait_studio.models.locator import download_url

    source = tmp_path / "published.pt"
    source.write_bytes(b"not the published weights")
    target = tmp_path / "weights" / "face_paint_512_v2.pt"
    with pytest.raises(ValueError, match="git blob .* expected d75102f8"):
        download_url(source.as_uri(), target, None, progress=False,
                     git_blob="d75102f8f201ddaf8dbe6b913b1a97585b55f838")
    assert not target.exists() and not list(target.parent.glob("*.part"))
    download_url(source.as_uri(), target, None, progress=False, git_blob=git_blob_id(source))
    assert target.read_bytes() == source.read_bytes()


def test_a_truncated_unet_is_a_typed_error_naming_the_file(tmp_path, sd15_build):
    from portrait_studio.errors import BadWeightsFileError
    from portrait_studio.models.manager import ModelManager

    folder = tmp_path / "sd15"
    shutil.copytree(sd15_build, folder)
    weights = folder / UNET_FILE
    weights.write_bytes(weights.read_bytes()[:2048])
    settings = settings_from_env({"PORTRAIT_STUDIO_MODEL_BASE": str(folder)}, home=tmp_path / "home", device="cpu")
    with pytest.raises(BadWeightsFileError) as err:
        ModelManager(settings).sd_components("base", ("unet",))
    assert str(weights) in str(err.value) and "download --roles base" in str(err.value)


def test_fast_mode_needs_only_the_adapter_config(tmp_path, hub_cache):
    import json

    def config_only(folder: Path) -> None:
        (folder / "config.json").write_text(json.dumps({"_class_name": "MotionAdapter"}))

    write_snapshot(hub_cache, "guoyww/animatediff-motion-adapter-v1-5-2", config_only)
    locator = _locator(tmp_path)
    assert locator.is_available("motion_adapter", config_only=True)
    with pytest.raises(IncompleteWeightsError, match="diffusion_pytorch_model.safetensors missing"):
        locator.path("motion_adapter")
