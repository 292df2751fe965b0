"""The published SadTalker checkpoint layout and loading our networks from it.

``SadTalker_V0.0.2_{256,512}.safetensors`` hold five sub-networks by key prefix (1,305 keys):
``kp_extractor.`` (75), ``generator.`` (386, 18 spectral-norm convs as weight_orig/u/v),
``audio2exp.`` (93), ``audio2pose.`` (419, incl. training-only CVAE encoder and discriminator) and
``face_3drecon.`` (332). The mapping network ships apart as a training checkpoint (a torch pickle with
``mapping``, ``discriminator``, ``optimizer_mapping``, ``optimizer_discriminator``, ``epoch``); we read it
once with ``weights_only=True``, keep only ``mapping``, and store that as safetensors.
"""

from __future__ import annotations

import os
import tempfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from portrait_studio.talk.config import CONFIG_METADATA_KEY, POSE_DIM, AudioNetConfig, EngineConfig
from portrait_studio.talk.nets.audio_nets import ExpressionNet, PoseNet, ResUnet
from portrait_studio.talk.nets.generator import RenderGenerator
from portrait_studio.talk.nets.keypoints import KeypointDetector, MappingNet
from portrait_studio.talk.nets.recon import FaceReconNet

PARTS = ("kp_extractor", "generator", "audio2exp", "audio2pose", "face_3drecon")
RENDER_SIZES = (256, 512)
MAPPING_FILES = {"crop": "mapping_00229-model.pth.tar", "full": "mapping_00109-model.pth.tar"}
MAPPING_COEFFS = {"crop": 70, "full": 73}


class CheckpointMismatch(ValueError):
    """A checkpoint whose keys or shapes differ from the layout our networks expect."""


def checkpoint_name(size: int) -> str:
    return f"SadTalker_V0.0.2_{size}.safetensors"


def build_part(name: str, cfg: EngineConfig) -> nn.Module:
    builders = {
        "kp_extractor": lambda: KeypointDetector(cfg.renderer),
        "generator": lambda: RenderGenerator(cfg.renderer),
        "audio2exp": lambda: ExpressionNet(cfg.audio),
        "audio2pose": lambda: PoseNet(cfg.audio),
        "face_3drecon": lambda: FaceReconNet(cfg.recon),
    }
    return builders[name]()


def build_mapping(cfg: EngineConfig, mode: str = "crop") -> MappingNet:
    r = cfg.renderer
    return MappingNet(MAPPING_COEFFS[mode], r.mapping_descriptor, r.mapping_layers, r.num_kp, r.num_bins)


# ---- training-only parts of audio2pose: present in the file, never run ---------------------------------
class _ConvNormRelu1d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, bias=False)
        self.norm = nn.BatchNorm1d(cout)


def _pose_training_parts(cfg: AudioNetConfig) -> nn.Module:
    """Modules whose state dict lists the CVAE encoder and discriminator keys (for layout checks)."""
    root = nn.Module()
    root.netG = nn.Module()
    enc = nn.Module()
    root.netG.encoder = enc
    enc.resunet = ResUnet(cfg.resunet_filters)
    enc.MLP = nn.Sequential()
    sizes = [cfg.encoder_layer_sizes[0] + cfg.latent_size + cfg.seq_len * cfg.audio_emb_out + POSE_DIM,
             *cfg.encoder_layer_sizes[1:]]
    for i, (cin, cout) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        enc.MLP.add_module(f"L{i}", nn.Linear(cin, cout))
    enc.linear_means = nn.Linear(sizes[-1], cfg.latent_size)
    enc.linear_logvar = nn.Linear(sizes[-1], cfg.latent_size)
    enc.linear_audio = nn.Linear(cfg.audio_emb_in, cfg.audio_emb_out)
    enc.classbias = nn.Parameter(torch.zeros(cfg.num_classes, cfg.latent_size))
    c1, c2, c3 = cfg.discriminator_channels
    root.netD_motion = nn.Module()
    root.netD_motion.seq = nn.Sequential(
        _ConvNormRelu1d(POSE_DIM, c1, 4), _ConvNormRelu1d(c1, c2, 4), _ConvNormRelu1d(c2, c3, 3), nn.Conv1d(c3, 1, 3)
    )
    return root


def part_layout(name: str, cfg: EngineConfig, with_training: bool = True) -> dict[str, tuple[int, ...]]:
    """Key -> shape of one sub-network as stored (without the prefix)."""
    layout = {k: tuple(v.shape) for k, v in build_part(name, cfg).state_dict().items()}
    if name == "audio2pose" and with_training:
        layout.update({k: tuple(v.shape) for k, v in _pose_training_parts(cfg.audio).state_dict().items()})
    return layout


def checkpoint_layout(cfg: EngineConfig | None = None) -> dict[str, tuple[int, ...]]:
    """Every key of ``SadTalker_V0.0.2_*.safetensors`` with its shape."""
    cfg = cfg or EngineConfig()
    return {f"{p}.{k}": s for p in PARTS for k, s in part_layout(p, cfg).items()}


def mapping_layout(cfg: EngineConfig | None = None, mode: str = "crop") -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in build_mapping(cfg or EngineConfig(), mode).state_dict().items()}


# ---- deterministic synthetic weights (tiny models, golden tests) -------------------------------------
def synthetic_tensor(key: str, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """A well-scaled random tensor that depends only on (key, shape, seed)."""
    gen = torch.Generator().manual_seed(zlib.crc32(key.encode()) + seed * 7919)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return torch.tensor(0, dtype=torch.long)
    noise = torch.randn(shape, generator=gen, dtype=torch.float32)
    if leaf == "running_var":
        return 1.0 + 0.2 * noise.abs()
    if leaf == "running_mean":
        return 0.1 * noise
    if leaf in ("weight_u", "weight_v"):
        return noise / noise.norm().clamp_min(1e-6)
    if len(shape) <= 1:  # 1-D weights are norm scales (around 1); the rest are shifts and biases
        return (1.0 if leaf == "weight" else 0.0) + 0.1 * noise
    fan_in = 1
    for n in shape[1:]:
        fan_in *= n
    return noise / fan_in**0.5


def synthetic_state(layout: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    return {k: synthetic_tensor(k, s, seed) for k, s in layout.items()}


# ---- loading --------------------------------------------------------------------------------------------
def read_config(path: Path) -> EngineConfig:
    """The sizes recorded in a checkpoint's metadata, or the published sizes when none are recorded."""
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    text = meta.get(CONFIG_METADATA_KEY)
    return EngineConfig.from_json(text) if text else EngineConfig()


def load_part(path: Path, name: str, cfg: EngineConfig | None = None) -> nn.Module:
    """Build sub-network ``name`` and load its weights from the combined safetensors file (eval mode)."""
    cfg = cfg or read_config(path)
    module = build_part(name, cfg)
    prefix = name + "."
    state: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt") as handle:
        for key in handle.keys():
            if not key.startswith(prefix):
                continue
            local = key[len(prefix):]
            if name == "audio2pose" and local.startswith(PoseNet.TRAINING_ONLY_PREFIXES):
                continue
            state[local] = handle.get_tensor(key)
    _check_and_load(module, state, f"{path.name} [{name}]")
    return module


def load_mapping(path: Path) -> MappingNet:
    """Load a mapping network from our safetensors copy; its sizes come from the tensor shapes."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    try:
        sizes = MappingNet.sizes_from_state_dict(state)
    except KeyError as exc:
        raise CheckpointMismatch(f"{path.name} is not a mapping network (no {exc})") from None
    module = MappingNet(**sizes)
    _check_and_load(module, state, path.name)
    return module


def convert_mapping_pickle(source: Path, target: Path) -> Path:
    """Read the published ``mapping_*.pth.tar`` (weights_only) and write its ``mapping`` entry as safetensors."""
    checkpoint = torch.load(str(source), map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("mapping"), dict):
        raise CheckpointMismatch(f"{source.name} has no 'mapping' state dict")
    state = {k: v.contiguous() for k, v in checkpoint["mapping"].items() if isinstance(v, torch.Tensor)}
    save_atomic(state, target, {"source": source.name})
    return target


def save_atomic(state: dict[str, torch.Tensor], target: Path, metadata: dict[str, str] | None = None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".safetensors")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=metadata)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_and_load(module: nn.Module, state: dict[str, torch.Tensor], label: str) -> None:
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k])
    if missing or unexpected or wrong:
        raise CheckpointMismatch(
            f"{label}: {len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} wrong-shaped keys"
            + _examples(("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
        )
    module.load_state_dict(state, strict=True)
    module.eval().requires_grad_(False)


def _examples(*groups: tuple[str, Iterable[str]]) -> str:
    parts = [f"{label}: {', '.join(list(keys)[:3])}" for label, keys in groups if keys]
    return " (" + "; ".join(parts) + ")" if parts else ""
