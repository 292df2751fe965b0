"""Loading AniPortrait's networks from tiny files in the published format, and refusing damaged ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from portrait_studio.errors import MissingWeightsError
from portrait_studio.talk.aniportrait.nets import load_nets, unet_config_from_state
from portrait_studio.talk.aniportrait.reference_attention import reading, recording
from portrait_studio.talk.aniportrait.tiny import build_aniportrait, build_wav2vec2
from tests.talk._aniportrait_inputs import published_layout


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("aniportrait")
    build_aniportrait(root / "aniportrait")
    build_wav2vec2(root / "wav2vec2")
    return root / "aniportrait", root / "wav2vec2"


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
