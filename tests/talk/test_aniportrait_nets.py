"""Loading AniPortrait's networks from tiny files in the published format, and refusing damaged ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from portrait_studio.errors import MissingWeightsError
from portrait_studio.talk.aniportrait.nets import load_nets, unet_config_from_state
from portrait_studio.talk.aniportrait.reference_attention import reading, recording
from tests.talk._aniportrait_inputs import published_layout


@pytest.fixture(scope="module")
def folders(tiny_manager) -> tuple[Path, Path]:  # noqa: ANN001 - the session's ModelManager
    """The tiny roles, written by their builders through the model locator like every other role."""
    return tiny_manager.locator.path("aniportrait"), tiny_manager.locator.path("wav2vec2")


def test_published_unet_files_give_sd15_config() -> None:
    layout = published_layout()
    state = {k: torch.empty(s, device="meta") for k, s in layout["denoising_unet.pth"].items()}
    config = unet_config_from_state(state)
    assert config["block_out_channels"] == [320, 640, 1280, 1280]
    assert (config["layers_per_block"], config["cross_attention_dim"], config["in_channels"]) == (2, 768, 4)
    assert config["down_block_types"] == ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"]


@torch.no_grad()
def test_tiny_files_load_and_run_one_guided_step(folders: tuple[Path, Path], tmp_path: Path) -> None:
    nets = load_nets(folders[0], folders[1], tmp_path / "converted")
    assert len(list((tmp_path / "converted" / "aniportrait").glob("*.safetensors"))) == 6
    frames = 2
    pose = nets.pose_guider(torch.zeros(2, 3, frames, 64, 64))
    embeds = torch.randn(2, 1, 32)
    with recording(nets.reference_net) as bank:
        nets.reference_net(torch.randn(2, 4, 8, 8), 0, encoder_hidden_states=embeds)
    with reading(nets.denoising_unet.unet, bank, guidance=True):
        out = nets.denoising_unet(torch.randn(2, 4, frames, 8, 8), torch.tensor(999), embeds, pose)
    assert out.shape == (2, 4, frames, 8, 8) and torch.isfinite(out).all()
    mesh = nets.audio2mesh(torch.randn(1, 3200), 6)
    assert mesh.shape == (1, 6, 1404)
    assert nets.audio2pose(torch.randn(1, 3200), 6, torch.tensor([3])).shape == (1, 6, 6)


@pytest.mark.parametrize("name", ["motion_module.pth", "audio2pose.pt"])
def test_truncated_published_file_names_itself(folders: tuple[Path, Path], tmp_path: Path, name: str) -> None:
    broken = tmp_path / "aniportrait"
    broken.mkdir()
    for path in folders[0].iterdir():
        data = path.read_bytes()
        (broken / path.name).write_bytes(data[: len(data) // 3] if path.name == name else data)
    with pytest.raises(MissingWeightsError, match=name.replace(".", r"\.")):
        load_nets(broken, folders[1], tmp_path / "converted")


def test_missing_file_is_named(folders: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match=r"pose_guider\.pth is missing"):
        load_nets(tmp_path, folders[1], tmp_path / "converted")


def test_pose_images_render_to_frames_with_progress_and_cancel(folders: tuple[Path, Path], tiny_manager,  # noqa: ANN001
                                                               tmp_path: Path) -> None:
    from diffusers import AutoencoderKL
    from transformers import CLIPVisionModelWithProjection

    from portrait_studio.errors import CancelledError
    from portrait_studio.progress import CancelToken
    from portrait_studio.talk.aniportrait.pipeline import render

    nets = load_nets(folders[0], folders[1], tmp_path / "converted")
    vae = AutoencoderKL.from_pretrained(str(tiny_manager.locator.path("vae_ft_mse"))).eval()
    encoder = CLIPVisionModelWithProjection.from_pretrained(
        str(tiny_manager.locator.path("aniportrait_image_encoder")), subfolder="image_encoder").eval()
    rng = np.random.default_rng(0)
    portrait = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    poses = np.zeros((3, 64, 64, 3), np.uint8)
    poses[:, 20:40, 20:40] = 255
    reports: list[float] = []
    frames = render(nets, vae, encoder, portrait, poses, steps=2, progress=lambda f, m="": reports.append(f))
    assert frames.shape == (3, 64, 64, 3) and frames.dtype == np.uint8
    assert reports[-1] == pytest.approx(1.0) and reports == sorted(reports)
    again = render(nets, vae, encoder, portrait, poses, steps=2)
    assert np.array_equal(frames, again)  # seeded
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(CancelledError):
        render(nets, vae, encoder, portrait, poses, steps=2, cancel=cancel)
