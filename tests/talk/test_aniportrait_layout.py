"""AniPortrait: our modules match the published files key for key, shape for shape, and bad files are refused.

``aniportrait_layout.txt`` was derived from the reference network definitions (AniPortrait's
``PoseGuider(320, use_ca=True)``, ``Audio2MeshModel`` and ``Audio2PoseModel`` with the inference config and a
``wav2vec2-base-960h``-sized encoder). The encoder's weight-normed conv is listed as ``weight_g``/``weight_v``,
as torch 2.0.1 (the reference's pin) writes it.
"""

from __future__ import annotations

import pickle

import pytest
import torch
from transformers import Wav2Vec2Config

from portrait_studio.errors import MissingWeightsError
from portrait_studio.talk.aniportrait.audio_models import Audio2Mesh, Audio2Pose
from portrait_studio.talk.aniportrait.checkpoint import (
    converted,
    load_audio_model,
    load_pose_guider,
    read_published,
    state_layout,
)
from portrait_studio.talk.aniportrait.pose_guider import PoseGuider, PoseGuiderConfig
from portrait_studio.talk.checkpoint import CheckpointMismatch, synthetic_state
from tests.talk._aniportrait_inputs import published_layout, tiny_wav2vec_config


def _published_spelling(layout: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    rename = {".parametrizations.weight.original0": ".weight_g", ".parametrizations.weight.original1": ".weight_v"}
    out = {}
    for key, shape in layout.items():
        for new, old in rename.items():
            key = key.replace(new, old)
        out[key] = shape
    return out


def test_published_counts() -> None:
    files = published_layout()
    assert {name: len(keys) for name, keys in files.items()} == {
        "pose_guider.pth": 184, "audio2mesh.pt": 215, "audio2pose.pt": 363, "reference_unet.pth": 682,
        "denoising_unet.pth": 686, "motion_module.pth": 588}
    assert files["pose_guider.pth"]["cross_attn1.proj_in.weight"] == (1408, 320, 1, 1)
    assert files["audio2mesh.pt"]["out_fn.weight"] == (1404, 512)
    assert files["audio2pose.pt"]["PPE.pe"] == (1, 600, 512)


def test_pose_guider_matches_published_layout() -> None:
    with torch.device("meta"):
        ours = state_layout(PoseGuider(PoseGuiderConfig()))
    assert ours == published_layout()["pose_guider.pth"]


@pytest.mark.parametrize("cls,file", [(Audio2Mesh, "audio2mesh.pt"), (Audio2Pose, "audio2pose.pt")])
def test_audio_models_match_published_layout(cls: type, file: str) -> None:
    with torch.device("meta"):
        ours = state_layout(cls(Wav2Vec2Config()))
    assert _published_spelling(ours) == published_layout()[file]


def test_truncated_and_code_carrying_files_are_refused_by_name(tmp_path) -> None:
    state = {"final_proj.weight": torch.zeros(2, 2)}
    good = tmp_path / "pose_guider.pth"
    torch.save(state, good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(MissingWeightsError, match=r"truncated\.pth: the file could not be read"):
        read_published(truncated)
    # a pickle that would build an arbitrary object is not unpickled at all
    code = tmp_path / "pose_guider_code.pth"
    code.write_bytes(pickle.dumps({"final_proj.weight": torch.nn.Conv2d(1, 1, 1)}))
    with pytest.raises(MissingWeightsError, match=r"pose_guider_code\.pth"):
        read_published(code)
    with pytest.raises(MissingWeightsError, match=r"missing\.pth: the file is missing"):
        read_published(tmp_path / "missing.pth")


def test_old_weight_norm_names_are_read_and_converted_once(tmp_path) -> None:
    source = tmp_path / "audio2mesh.pt"
    torch.save({"module.audio_encoder.encoder.pos_conv_embed.conv.weight_g": torch.ones(1, 1, 3),
                "in_fn.weight": torch.ones(2, 2)}, source)
    state = read_published(source)
    assert set(state) == {"audio_encoder.encoder.pos_conv_embed.conv.parametrizations.weight.original0",
                          "in_fn.weight"}
    target = converted(source, tmp_path / "cache")
    stamp = target.stat().st_mtime_ns
    assert converted(source, tmp_path / "cache").stat().st_mtime_ns == stamp
    assert target.suffix == ".safetensors"


def test_pose_guider_loads_strictly_and_reports_mismatch() -> None:
    cfg = PoseGuiderConfig(latent_channels=32, heads=1, head_dim=16, norm_groups=32)
    state = synthetic_state(state_layout(PoseGuider(cfg)))
    net = load_pose_guider(state)
    assert net.cross_attn1.transformer_blocks[0].attn1.heads == 1 and not net.training
    state.pop("scale")
    state["final_proj.bias"] = torch.zeros(3)
    with pytest.raises(CheckpointMismatch, match=r"1 missing.*1 wrong-shaped"):
        load_pose_guider(state)


def test_audio_model_heads_required_encoder_overrides_allowed(tmp_path) -> None:
    from transformers import Wav2Vec2Model

    folder = tmp_path / "wav2vec2"
    Wav2Vec2Model(tiny_wav2vec_config()).save_pretrained(folder)
    heads = {k: v for k, v in state_layout(Audio2Mesh(tiny_wav2vec_config(), 16, 12)).items()
             if not k.startswith("audio_encoder.")}
    state = synthetic_state(heads)
    override = torch.full((32,), 0.5)
    state["audio_encoder.masked_spec_embed"] = override
    net = load_audio_model("audio2mesh", state, folder)
    assert torch.equal(net.audio_encoder.masked_spec_embed, override)
    state["decoder.extra"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatch, match=r"1 unexpected keys \(decoder\.extra"):
        load_audio_model("audio2mesh", state, folder)
    del state["decoder.extra"], state["in_fn.bias"]
    with pytest.raises(CheckpointMismatch, match=r"1 missing"):
        load_audio_model("audio2mesh", state, folder)


def _sd15_config() -> dict:
    # SD1.5's unet/config.json differs from diffusers' UNet2DConditionModel defaults only in these three values
    return dict(cross_attention_dim=768, attention_head_dim=8, sample_size=64)


def test_reference_net_matches_published_layout() -> None:
    from diffusers import UNet2DConditionModel

    from portrait_studio.talk.aniportrait.reference_net import build_reference_net

    with torch.device("meta"):
        config = dict(UNet2DConditionModel(**_sd15_config()).config)
        ours = state_layout(build_reference_net(config))
    published = published_layout()["reference_unet.pth"]
    assert len(published) == 682  # SD1.5's 686 UNet keys without conv_norm_out/conv_out
    assert ours == published


def test_denoising_unet_and_motion_modules_match_published_layout() -> None:
    from diffusers import UNet2DConditionModel

    from portrait_studio.talk.aniportrait.denoising_unet import build_motion_unet, to_diffusers_keys, to_published_keys

    with torch.device("meta"):
        config = dict(UNet2DConditionModel(**_sd15_config()).config)
        ours = state_layout(build_motion_unet(config))
    files = published_layout()
    assert (len(files["denoising_unet.pth"]), len(files["motion_module.pth"])) == (686, 588)
    published = {**files["denoising_unet.pth"], **files["motion_module.pth"]}
    assert to_published_keys(ours) == published
    mapped = to_diffusers_keys({k: torch.zeros(1) for k in published})
    assert set(mapped) == set(ours)
